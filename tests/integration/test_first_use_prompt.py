"""The technician's first use of the prompt, on a real terminal (tmux): issue 15.

While the customer decides on a fix the prompt says so, with the time
waited; a fix that fails shows its stderr (at the prompt and in a batch);
long output goes through a pager; Tab offers the agent's command templates
after ``run`` and goes on into a completed directory; ``~.`` ends the shell
and ``~^Z`` leaves it running for ``shell`` to come back to; a session that
ends under a full-screen program gives the technician a sane terminal back.
"""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import pytest

from tests.helpers import tool
from tests.integration.share_process import Person, Share, sharing
from tests.integration.terminal import WAIT, Tmux
from tests.integration.test_share_connect import (
    NOTES,
    QUESTION,
    connect,
    events,
    technician_transcript,
)

PROMPT = "toolkit>"  # (tmux drops trailing spaces)
USER = pwd.getpwuid(os.getuid()).pw_name
#: What the agent says when the fix's program is not installed (as on a machine without
#: systemd-resolved); the tests need it missing.
MISSING = "resolvectl: No such file or directory"

pytestmark = pytest.mark.skipif(tool("tmux") is None, reason="tmux is not installed")
needs_no_resolvectl = pytest.mark.skipif(
    any(os.path.exists(f"{d}/resolvectl") for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin")),
    reason="resolvectl is installed here: flush-dns would not fail",
)


def start(tmux: Tmux, technician: Person, share: Share, *scopes: str, **size: int) -> None:
    """``toolkit connect`` in tmux window "tech"; a customer on a terminal says yes."""
    args = [a for s in scopes for a in ("--scope", s)]
    tmux.start(
        "tech", technician, "connect", share.address, "--code", share.code,
        "--ticket", "T-15", *args, **size,
    )  # fmt: skip
    if share.terminal is not None:
        share.wait_for_stderr(QUESTION)
        share.type("y\n")
    tmux.wait_for("tech", "ticket T-15")


@needs_no_resolvectl
def test_the_prompt_says_it_waits_for_the_customer_and_shows_a_failed_fix_s_stderr(
    tmp_path: Path, people: tuple[Person, Person], tmux: Tmux
) -> None:
    technician, customer = people
    policy = prompt_customer(customer)
    scopes = ("--scope", "diagnostics", "--scope", "fixes")
    with sharing(customer, "--policy", policy, *scopes, logs=tmp_path, terminal=True) as share:
        start(tmux, technician, share, "diagnostics", "fixes", width=80, height=24)
        # A command of the fixes templates: asked too.
        tmux.type("tech", "run resolvectl flush-caches")
        share.wait_for_stderr("resolvectl flush-caches")
        tmux.wait_for("tech", "waiting for the customer to approve run resolvectl flush-caches")
        share.type("n\n")
        tmux.wait_for("tech", "refused: the customer declined to run")
        # Declined: the waiting line counts up, then gives way to the refusal.
        tmux.type("tech", "fix flush-dns")
        share.wait_for_stderr("resolvectl flush-caches", count=2)
        tmux.wait_for("tech", "waiting for the customer to approve fix flush-dns ... 0s")
        tmux.wait_for("tech", "waiting for the customer to approve fix flush-dns ... 2s")
        share.type("n\n")
        shown = tmux.wait_for("tech", "refused: the customer declined the fix flush-dns")
        assert "waiting for the customer" not in shown
        # Approved: the step fails, and says why.
        tmux.type("tech", "fix flush-dns")
        share.wait_for_stderr("resolvectl flush-caches", count=3)
        tmux.wait_for("tech", "waiting for the customer to approve fix flush-dns ... 1s")
        share.type("y\n")
        shown = tmux.wait_for("tech", MISSING)
        tail = shown[shown.rindex("toolkit> fix flush-dns") :]
        assert "exit 127" in tail and "stderr" in tail, tail
        assert "waiting for the customer" not in tail, tail
        tmux.wait_for("tech", PROMPT, count=4)
        tmux.type("tech", "exit")
        tmux.wait_for("tech", "[exit ")
    # The notices are told, never recorded as output.
    mine = technician_transcript(technician, "T-15")
    assert "asking" not in "".join(e.get("data", "") for e in events(mine) if "data" in e)
    assert '"asking"' not in mine.read_text()


@needs_no_resolvectl
def test_a_failed_fix_in_a_batch_shows_its_stderr(
    tmp_path: Path, people: tuple[Person, Person]
) -> None:
    technician, customer = people
    policy = customer.root / "policy.toml"
    scopes = ("--scope", "diagnostics", "--scope", "fixes")
    with sharing(customer, "--policy", policy, *scopes, logs=tmp_path) as share:
        done = connect(technician, share, "fix flush-dns\n", *scopes)
    assert done.returncode == 1, done.stderr
    assert MISSING in done.stderr, done.stderr
    assert "exit status 127" in done.stderr
    # Off a terminal no counting line; the wait is said once on stderr (round 2), never on stdout.
    assert "waiting for the customer" not in done.stdout
    assert done.stderr.count("waiting for the customer") <= 1, done.stderr


PROMPT_POLICY = """\
[files]
allow = ["~/notes.txt", "~/logs/**"]
[commands]
diagnostics = [
    ["uname", "-a"],
    ["journalctl", "-u", "{unit}", "--no-pager"],
]
fixes = [["resolvectl", "flush-caches"]]
[placeholders]
unit = "^[a-z-]+$"
"""
#: Longer than any screen the tests use.
LOG_LINES = 300


def prompt_customer(customer: Person) -> Path:
    """A policy with a directory tree to complete into and a long log to page."""
    app = customer.home / "logs" / "app"
    app.mkdir(parents=True)
    (app / "today.log").write_text("".join(f"log line {i:04d}\n" for i in range(LOG_LINES)))
    policy = customer.root / "prompt-policy.toml"
    policy.write_text(PROMPT_POLICY)
    return policy


def test_tab_offers_run_templates_and_goes_on_into_directories(
    tmp_path: Path, people: tuple[Person, Person], tmux: Tmux, monkeypatch: pytest.MonkeyPatch
) -> None:
    technician, customer = people
    # Paging is the next test's; a pager that is not installed shows the text as it is.
    monkeypatch.setenv("PAGER", "toolkit-no-such-pager-4711 -R")
    policy = prompt_customer(customer)
    with sharing(customer, "--policy", policy, "--scope", "diagnostics", logs=tmp_path) as share:
        start(tmux, technician, share, "diagnostics")
        # `run ` + Tab: the agent's templates, in a menu.
        tmux.keys("tech", "run ", literal=True)
        tmux.keys("tech", "Tab")
        menu = tmux.wait_for("tech", "journalctl -u {unit} --no-pager")
        assert "uname -a" in menu and "the customer is asked" in menu, menu
        tmux.keys("tech", "C-c")
        tmux.wait_for("tech", PROMPT, count=2)
        # One match completes up to its first placeholder.
        tmux.keys("tech", "run jo", literal=True)
        tmux.keys("tech", "Tab")
        tmux.wait_for("tech", "toolkit> run journalctl -u\n")
        tmux.keys("tech", "C-c")
        tmux.wait_for("tech", PROMPT, count=3)
        tmux.keys("tech", "run un", literal=True)
        tmux.keys("tech", "Tab")
        tmux.wait_for("tech", "toolkit> run uname -a")
        tmux.keys("tech", "Enter")
        tmux.wait_for("tech", "exit 0")
        # A directory completes with its "/", and the next Tab goes on inside it.
        tmux.keys("tech", "read ~/lo", literal=True)
        tmux.keys("tech", "Tab")
        tmux.wait_for("tech", "toolkit> read ~/logs/\n")
        tmux.keys("tech", "Tab")
        tmux.wait_for("tech", "toolkit> read ~/logs/app/\n")
        tmux.keys("tech", "Tab")
        tmux.wait_for("tech", "toolkit> read ~/logs/app/today.log")
        tmux.keys("tech", "Enter")
        # No such pager: all of it on the screen.
        tmux.wait_for("tech", f"log line {LOG_LINES - 1:04d}")
        tmux.wait_for("tech", "sha256")
        tmux.type("tech", "exit")
        tmux.wait_for("tech", "[exit 0]")


@pytest.mark.skipif(tool("less") is None, reason="less is not installed")
def test_long_output_goes_through_the_pager_short_output_does_not(
    tmp_path: Path, people: tuple[Person, Person], tmux: Tmux, monkeypatch: pytest.MonkeyPatch
) -> None:
    technician, customer = people
    for name in ("PAGER", "TOOLKIT_PAGER", "LESS"):
        monkeypatch.delenv(name, raising=False)
    policy = prompt_customer(customer)
    (customer.home / "logs" / "evil.log").write_text("\x1b[2J\x1b]0;owned\x07" + "x\n" * 100)
    with sharing(customer, "--policy", policy, "--scope", "diagnostics", logs=tmp_path) as share:
        start(tmux, technician, share, "diagnostics", width=100, height=30)
        tmux.type("tech", "read ~/notes.txt")  # short: written as it is, no pager
        tmux.wait_for("tech", NOTES.strip())
        tmux.wait_for("tech", PROMPT, count=2)
        tmux.type("tech", "read ~/logs/app/today.log")
        tmux.wait_for("tech", "log line 0027")
        paged = tmux.screen("tech")
        assert "log line 0000" in paged and "log line 0100" not in paged, paged
        assert paged.rstrip().splitlines()[-1].startswith(":"), paged  # less's prompt
        tmux.keys("tech", "G")
        tmux.wait_for("tech", f"log line {LOG_LINES - 1:04d}")
        tmux.keys("tech", "q")
        shown = tmux.wait_for("tech", PROMPT, count=3)
        assert "sha256" in shown  # the file's digest line came with it
        # What the pager sees is escaped as the screen would be.
        tmux.type("tech", "read ~/logs/evil.log")
        tmux.wait_for("tech", "\\x1b[2J")
        tmux.keys("tech", "q")
        tmux.wait_for("tech", PROMPT, count=4)
        tmux.type("tech", "exit")
        tmux.wait_for("tech", "[exit 0]")


def pane_modes(tmux: Tmux) -> dict[str, str]:
    """The technician's terminal modes, as tmux (the terminal) has them."""
    names = ("alternate_on", "cursor_flag", "mouse_any_flag", "keypad_cursor_flag")
    shown = tmux._run("display-message", "-p", "-t", "tech", " ".join(f"#{{{n}}}" for n in names))
    return dict(zip(names, shown.split(), strict=True))


def shell_prompt_after(tmux: Tmux, mark: str) -> None:
    """Until the remote shell's prompt shows after ``mark`` (typeahead is not for tests)."""
    deadline = time.monotonic() + WAIT
    while f"{USER}@" not in (screen := tmux.screen("tech", history=True)).rsplit(mark, 1)[-1]:
        assert time.monotonic() < deadline, screen
        time.sleep(0.05)


def test_tilde_ctrl_z_detaches_the_shell_and_shell_goes_back_to_it(
    tmp_path: Path, people: tuple[Person, Person], tmux: Tmux
) -> None:
    technician, customer = people
    policy = customer.root / "policy.toml"
    scopes = ("--scope", "diagnostics", "--scope", "shell")
    with sharing(customer, "--policy", policy, *scopes, logs=tmp_path) as share:
        start(tmux, technician, share, "diagnostics", "shell")
        tmux.type("tech", "shell")
        tmux.wait_for("tech", f"{USER}@")
        tmux.type("tech", "KEPT=kept-$((3*3)); (sleep 1; echo away-$((5*5))) &")
        tmux.keys("tech", "~", literal=True)
        tmux.keys("tech", "C-z")
        tmux.wait_for(
            "tech", "[back at the toolkit prompt; the shell keeps running: type shell to go back]"
        )
        tmux.wait_for("tech", "shell detached")
        tmux.type("tech", "run true")  # the prompt works meanwhile
        tmux.wait_for("tech", "exit 0")
        tmux.type("tech", "shell")  # the same shell, with what it wrote meanwhile
        tmux.wait_for("tech", "away-25")
        tmux.type("tech", "echo $KEPT")
        tmux.wait_for("tech", "kept-9")
        tmux.keys("tech", "~.", literal=True)
        tmux.wait_for("tech", "[back at the toolkit prompt; ~. hung up the shell]")
        # A new shell, detached, is hung up (and its end recorded) when the session ends.
        tmux.type("tech", "shell")
        shell_prompt_after(tmux, "[back at the toolkit prompt; ~. hung up the shell]")
        tmux.type("tech", "echo second-$((4*4))")
        tmux.wait_for("tech", "second-16")
        tmux.keys("tech", "~", literal=True)
        tmux.keys("tech", "C-z")
        tmux.wait_for(
            "tech",
            "[back at the toolkit prompt; the shell keeps running: type shell to go back]",
            count=2,
        )
        tmux.type("tech", "exit")
        shown = tmux.wait_for("tech", "[exit ")
        assert "[exit 0]" in shown and "[hanging up the detached shell]" in shown, shown
    mine = technician_transcript(technician, "T-15")
    found = events(mine)
    assert [e["type"] for e in found].count("shell_start") == 2, found
    shells = [e for e in found if e.get("op") == "shell"]
    assert [e["exit_status"] for e in shells] == [129, 129], shells  # hung up, as documented
    assert "away-25" in mine.read_text()  # recorded while detached


def test_a_session_that_ends_under_a_full_screen_program_gives_the_terminal_back(
    tmp_path: Path, people: tuple[Person, Person], tmux: Tmux
) -> None:
    technician, customer = people
    if tool("less") is None:
        pytest.skip("less is not installed")
    policy = customer.root / "policy.toml"
    scopes = ("--scope", "diagnostics", "--scope", "shell")
    with sharing(customer, "--policy", policy, *scopes, logs=tmp_path) as share:
        start(tmux, technician, share, "diagnostics", "shell")
        before = pane_modes(tmux)
        tmux.type("tech", "shell")
        tmux.wait_for("tech", f"{USER}@")
        # Hidden cursor, mouse reporting, application keypad, then less on the alternate screen.
        tmux.type("tech", r"printf '\033[?25l\033[?1000h\033='; less notes.txt")
        tmux.wait_for("tech", NOTES.strip())
        assert pane_modes(tmux)["alternate_on"] == "1"
        share.interrupt()  # the customer ends it, with less still up
        shown = tmux.wait_for("tech", "The customer ended the session")
        tmux.wait_for("tech", "[exit ")
        assert pane_modes(tmux) == before, (before, pane_modes(tmux))
        assert "Consent passed" in tmux.screen("tech"), shown  # the main screen, as it was
        # Cooked mode again: what is typed now (under the wrapper's sleep) is echoed.
        tmux.keys("tech", "typed-after-the-end", literal=True)
        tmux.wait_for("tech", "typed-after-the-end")
