"""The customer's and the relay's side after issue 15, as a newcomer tried it (round 2).

What they tripped over: share named a host key right after the relay's
fingerprint was compared, without saying whose; the customer's log spoke of
"the customer" and said things twice (a declined fix, a declined session,
the end); at 80x24 the live view dropped its oldest lines and nothing
reprinted them; the view never said a shell was still open (the technician
may have detached from it); and a technician turned away because share had
nobody to ask heard "The customer declined the session", with a hedge.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
from pathlib import Path

from tests.integration.share_process import RUN_TIMEOUT, Person, end, sharing
from tests.integration.terminal import Tmux
from tests.integration.test_first_use_share import HELP, QUESTION, SCOPES, wait_on_screen
from tests.integration.test_share_connect import start_connect
from tests.relay_support import host_key, relay_process

PROMPT = "toolkit>"
USER = pwd.getpwuid(os.getuid()).pw_name
#: The header's row while a shell is open (toolkit.cli.live.SHELL_OPEN).
SHELL_OPEN = "shell       open: it runs until it exits or the session ends"
#: A line of share's log, as printed into the scrollback: "[13:43:03] ...".
LOGGED = re.compile(r"^\[\d\d:\d\d:\d\d\] (.*)$")
RUNS = 13  # more lines than the view's log ever shows (LOG_LINES)


def logged(screen: str) -> list[str]:
    """The log lines printed on the customer's terminal (their time stamps dropped)."""
    return [m.group(1) for row in screen.splitlines() if (m := LOGGED.match(row.strip()))]


def test_the_whole_log_reaches_the_scrollback_each_fact_once_with_the_shell_said_open(
    people: tuple[Person, Person], tmux: Tmux
) -> None:
    technician, customer = people
    code_file = customer.root / "code"
    tmux.start(
        "cust", customer, "share", "--policy", customer.root / "policy.toml",
        "--code-file", code_file, *SCOPES, width=80, height=24,
    )  # fmt: skip
    listening = tmux.wait_for("cust", "Listening on ")
    line = next(row for row in listening.splitlines() if row.startswith("Listening on "))
    # Whose key: this share's own, the one the technician's screen shows.
    assert re.search(r"Listening on 127\.0\.0\.1:\d+, this share's own host key SHA256:", line)
    assert "relay" not in line, line
    address = line.split("Listening on ", 1)[1].split(",", 1)[0]
    code = code_file.read_text().strip()
    tmux.start("tech", technician, "connect", address, "--code", code, "--ticket", "T-7", *SCOPES)
    tmux.wait_for("cust", QUESTION)
    tmux.type("cust", "y")
    tmux.wait_for("tech", PROMPT)
    view = wait_on_screen(tmux, "cust", "session running")
    assert "shell       none open" in view, view

    # The first action, then enough after it that the view must drop it.
    tmux.type("tech", "diag system")
    wait_on_screen(tmux, "cust", "diagnostic system -> exit")
    tmux.type("tech", "fix flush-dns")
    wait_on_screen(tmux, "cust", "y = yes, n or Enter = no")
    tmux.keys("cust", "n")
    tmux.wait_for("tech", "refused: the customer declined the fix flush-dns")
    wait_on_screen(tmux, "cust", "you declined the fix flush-dns")
    for _ in range(RUNS):
        tmux.type("tech", "run true")
    tmux.type("tech", "run false")  # the prompt runs one line at a time: this one comes last
    view = wait_on_screen(tmux, "cust", "run false -> exit 1")
    assert "diagnostic system" not in view, view  # the view had to drop it

    # A shell: the header says it is open, and still does once the technician detached.
    tmux.type("tech", "shell")
    tmux.wait_for("tech", f"{USER}@")
    view = wait_on_screen(tmux, "cust", SHELL_OPEN)
    assert "the technician's shell (read-only): open" in view, view
    tmux.type("tech", "echo in-the-shell-$((6*7))")
    wait_on_screen(tmux, "cust", "in-the-shell-42")
    tmux.keys("tech", "~", literal=True)
    tmux.keys("tech", "C-z")
    tmux.wait_for("tech", "shell detached")
    tmux.type("tech", "run uname -a")  # back at the prompt; the shell runs on
    view = wait_on_screen(tmux, "cust", "run uname -a -> exit 0")
    assert SHELL_OPEN in view and "shell ended" not in view, view

    # The technician ends the session: the view goes, its whole log stays in the scrollback.
    tmux.type("tech", "exit")
    shown = tmux.wait_for("cust", "[exit ")
    assert "[exit 0]" in shown, shown
    assert HELP not in shown  # the view is gone, not left above the log
    log = logged(shown)
    session = log[log.index(next(said for said in log if said.startswith("session started:"))) :]
    assert any(said.startswith("diagnostic system -> exit") for said in session), shown
    assert sum(said == "run true -> exit 0" for said in session) == RUNS, shown
    assert any(said.startswith("shell started") for said in session), shown
    # Each fact once, spoken to the customer.
    declined = [said for said in session if "declined the fix flush-dns" in said]
    assert declined == [f"you declined {FLUSH_DNS}"], shown
    assert "customer declined" not in shown
    ended = [said for said in session if "ended the session" in said or "session ended" in said]
    assert len(ended) == 1 and ended[0].startswith("the technician ended the session"), shown
    assert "The session ended" not in shown
    assert "session started" in session  # the technician's hello, dropped by the view


FLUSH_DNS = "the fix flush-dns (Flush systemd-resolved's DNS cache): 1 command"


def test_a_declined_session_is_said_once_to_the_customer(
    people: tuple[Person, Person], tmp_path: Path
) -> None:
    technician, customer = people
    policy = customer.root / "policy.toml"
    with sharing(customer, "--policy", policy, logs=tmp_path, terminal=True) as share:
        proc = start_connect(technician, share, "run true\n")
        try:
            share.wait_for_stderr(QUESTION)
            share.type("n\n")
            _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            end(proc)
        share.type("\n")
        assert share.wait(10) == 3
    shown = share.stderr()
    assert "The customer declined the session" not in shown, shown
    assert not re.search(r"refused 127\.0\.0\.1:\d+", shown), shown
    assert shown.count("no session started, and the code is used up") == 1, shown
    # The technician: the customer said no, without a hedge about other causes.
    assert proc.returncode == 3
    assert "The customer declined the session." in stderr, stderr
    assert "did not answer" not in stderr and "closed toolkit share" not in stderr, stderr


# -- the technician hears how a no came about ----------------------------------------------


def connect_json(technician: Person, address: str, code: str, *scopes: str) -> dict[str, object]:
    batch = technician.root / "batch"
    batch.write_text("run true\n")
    done = technician.toolkit(
        "connect", address, "--code", code, "--ticket", "T-1", "--batch", batch, "--json",
        *(arg for scope in scopes for arg in ("--scope", scope)),
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    (line,) = [json.loads(raw) for raw in done.stdout.splitlines() if raw.strip()]
    assert line["type"] == "error", line
    error = line["error"]
    assert isinstance(error, dict)
    assert error["message"] in done.stderr, done.stderr
    return error


def test_nobody_to_ask_is_what_the_technician_hears(people: tuple[Person, Person]) -> None:
    """share without a terminal and without --yes: nobody could be asked, and connect says so."""
    technician, customer = people
    proc = customer.popen("share", "--json")  # stdin: /dev/null
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        error = connect_json(technician, f"{first['address']}:{first['port']}", first["code"])
        _, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        end(proc)
    assert error["code"] == "nobody-to-ask", error
    assert "Nobody could be asked" in str(error["message"]), error
    assert "no terminal" in str(error["message"]) and "--yes" in str(error["message"]), error
    assert "declined the session" not in str(error["message"]), error
    assert "terminal window" in str(error["hint"]), error
    assert proc.returncode == 3, err


def test_nothing_offered_is_what_the_technician_hears(
    people: tuple[Person, Person], tmp_path: Path
) -> None:
    technician, customer = people
    with sharing(customer, "--scope", "diagnostics", logs=tmp_path) as share:  # --yes
        error = connect_json(technician, share.address, share.code, "shell")
    assert error["code"] == "nothing-offered", error
    assert "offers none of the scopes you asked for" in str(error["message"]), error
    assert "--scope" in str(error["hint"]), error


def test_through_a_relay_share_says_the_host_key_it_names_is_its_own_not_the_relays(
    tmp_path: Path, tmux: Tmux
) -> None:
    """Right after comparing the relay's fingerprint, the customer reads another one: share
    says whose it is."""
    operator = Person.make(tmp_path / "operator")
    customer = Person.make(tmp_path / "customer")
    shutil.rmtree(customer.home / ".ssh", ignore_errors=True)
    with relay_process(operator, host_key(tmp_path / "operator" / "host_key")) as relay:
        tmux.start("cust", customer, "share", "--relay", f"127.0.0.1:{relay.port}", width=80)
        tmux.wait_for("cust", "(yes/no/[fingerprint])?")
        tmux.type("cust", "yes")
        screen = tmux.wait_for("cust", "One-time code")
        shown = " ".join(screen.split())  # the line, as one, however the terminal wrapped it
        said = re.search(
            r"Listening on the relay 127\.0\.0\.1:\d+ as rendezvous \d+, this share's own "
            r"host key (SHA256:\S+), not the relay's\. Ctrl-C ends it at once\.",
            shown,
        )
        assert said is not None, screen
        relays = str(relay.listening["host_key"])
        assert relays in shown and said.group(1) != relays, screen
        tmux.keys("cust", "C-c")
        tmux.wait_for("cust", "[exit")
