"""A newcomer's second try at the technician's side (issue 15, round 2), as they did it.

At the interactive prompt, on an 80x24 terminal: the code prompt's hint and the
status line fit, the last lines of a log are not numbered as if they were the
first, sizes are written as the customer's screen writes them, a detached shell
says how to go back, and ``exit`` after a declined fix exits 0 (the session's
own end, as ssh's). In a batch: the wait for the customer's answer is said on
stderr, stdout holds only the commands' output (or JSON lines only), and
stderr's lines for people are the same with ``--json``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import tool
from tests.integration.share_process import RUN_TIMEOUT, Person, Share, sharing
from tests.integration.terminal import WAIT, Tmux
from tests.integration.test_share_connect import QUESTION
from toolkit.cli.connect import CODE_HINT

USER = pwd.getpwuid(os.getuid()).pw_name
PROMPT = "toolkit>"
LINES = 300  # the log's lines, "log line 0000" to "log line 0299"
LOG = "".join(f"log line {i:04d}\n" for i in range(LINES))
POLICY = """\
[files]
allow = ["~/notes.txt", "~/logs/**"]
[commands]
diagnostics = [["uname", "-a"], ["true"]]
"""
SCOPES = ("--scope", "diagnostics", "--scope", "fixes", "--scope", "shell")
WAITING = "waiting for the customer to approve fix flush-dns..."


def customer_policy(customer: Person) -> Path:
    (customer.home / "logs").mkdir()
    (customer.home / "logs" / "app.log").write_text(LOG)
    policy = customer.root / "techn2-policy.toml"
    policy.write_text(POLICY)
    return policy


def rows(screen: str) -> list[str]:
    return [row.rstrip() for row in screen.splitlines()]


def after(screen: str, mark: str) -> str:
    """The screen from the last time ``mark`` shows ("" until it does)."""
    return screen[screen.rindex(mark) :] if mark in screen else ""


def prompt_count(tmux: Tmux) -> int:
    return tmux.screen("tech", history=True).count(PROMPT)


def typed(tmux: Tmux, line: str, until: str) -> str:
    """``line`` typed at the prompt; the screen from it, once ``until`` shows after it."""
    tmux.type("tech", line)
    deadline = time.monotonic() + WAIT
    while until not in (shown := after(tmux.screen("tech", history=True), f"> {line}")):
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)
    return shown


@pytest.mark.skipif(tool("tmux") is None, reason="tmux is not installed")
def test_a_session_at_80x24_fits_numbers_truly_and_exits_0_after_a_declined_fix(
    tmp_path: Path, people: tuple[Person, Person], tmux: Tmux, monkeypatch: pytest.MonkeyPatch
) -> None:
    technician, customer = people
    monkeypatch.setenv("PAGER", "")  # every line on the screen, none paged
    policy = customer_policy(customer)
    with sharing(customer, "--policy", policy, *SCOPES, logs=tmp_path, terminal=True) as share:
        tmux.start(
            "tech", technician, "connect", share.address, "--ticket", "T-1", *SCOPES,
            width=80, height=24,
        )  # fmt: skip
        # 4. A code that is not one: the hint shows whole at 80 columns.
        tmux.wait_for("tech", "One-time code from the customer:")
        tmux.type("tech", "12345")
        tmux.wait_for("tech", CODE_HINT)
        assert len(CODE_HINT) < 80
        tmux.keys("tech", "C-u")
        tmux.type("tech", share.code.replace("-", ""))
        share.wait_for_stderr(QUESTION)
        share.type("y\n")
        # 3. The status line fits 80 columns, its last part whole.
        tmux.wait_for("tech", PROMPT)
        status = bottom_line(tmux, "Ctrl-D ends")
        assert len(status) < 80 and status.startswith("ticket T-1 | "), status

        # 2. --tail: no numbers (the first line's number is not known); sizes as the
        # customer writes them (7), never with a thousands separator.
        shown = typed(tmux, "read ~/logs/app.log --tail 5", "sha256")
        last = [f"log line {i:04d}" for i in range(LINES - 5, LINES)]
        assert [row for row in rows(shown) if "log line" in row] == last, shown
        assert f"app.log: last 5 lines, {5 * 14} bytes of {len(LOG)}, sha256" in shown, shown
        assert f"{len(LOG):,}" not in shown
        share.wait_for_stderr(f"(last 5 lines, {5 * 14} bytes)")  # the customer's words
        # --head: numbered from 1, the file's own numbers.
        shown = typed(tmux, "read ~/logs/app.log --head 3", "sha256")
        numbered = [row for row in rows(shown) if "log line" in row]
        assert [row.split() for row in numbered] == [
            [str(i + 1), "log", "line", f"{i:04d}"] for i in range(3)
        ], shown
        # --tail past the file's start: all of it was sent, so its numbers are known.
        shown = typed(tmux, f"read ~/logs/app.log --tail {LINES + 100}", "sha256")
        assert re.search(rf"^\s*{LINES}\s+log line {LINES - 1:04d}$", shown, re.M), shown

        # 1. The customer declines a fix; the refusal is shown at once.
        tmux.type("tech", "fix flush-dns")
        share.wait_for_stderr("resolvectl flush-caches")
        share.type("n\n")
        tmux.wait_for("tech", "refused: the customer declined the fix flush-dns")

        # 3. A detached shell: the message and the status line name it and say what to type.
        count = prompt_count(tmux)
        tmux.type("tech", "shell")
        tmux.wait_for("tech", f"{USER}@")
        tmux.keys("tech", "~", literal=True)
        tmux.keys("tech", "C-z")
        tmux.wait_for("tech", PROMPT, count=count + 1)
        tmux.wait_for(
            "tech", "[back at the toolkit prompt; the shell keeps running: type shell to go back]"
        )
        status = bottom_line(tmux, "shell detached: type shell to go back")
        assert len(status) < 80 and "(shell returns)" not in status, status

        # 1. `exit`: the session's own end, which the technician chose: 0.
        tmux.type("tech", "exit")
        screen = tmux.wait_for("tech", "[exit ")
        assert "[exit 0]" in screen, screen
    assert share.wait(10) == 0


def bottom_line(tmux: Tmux, ends: str) -> str:
    """The status line (the screen's last row), once it ends with ``ends``."""
    deadline = time.monotonic() + WAIT
    while True:
        screen = [row for row in rows(tmux.screen("tech")) if row.strip()]
        if screen and screen[-1].endswith(ends):
            return screen[-1].strip()
        assert time.monotonic() < deadline, "\n".join(screen)
        time.sleep(0.05)


@pytest.mark.skipif(tool("tmux") is None, reason="tmux is not installed")
def test_the_prompt_exits_3_with_its_reason_when_the_customer_ends_it(
    tmp_path: Path, people: tuple[Person, Person], tmux: Tmux
) -> None:
    """The one prompt end that is not the technician's: said on the screen, and 3."""
    technician, customer = people
    policy = customer_policy(customer)
    with sharing(customer, "--policy", policy, "--scope", "diagnostics", logs=tmp_path) as share:
        tmux.start(
            "tech", technician, "connect", share.address, "--ticket", "T-1", "--code", share.code
        )
        tmux.wait_for("tech", "ticket T-1")
        share.interrupt()
        screen = tmux.wait_for("tech", "[exit ")
    assert "[exit 3]" in screen and "The customer ended the session" in screen, screen


# -- batch ---------------------------------------------------------------------------------


BATCH = "diag disk\nfix flush-dns\n"


def run_batch(
    technician: Person, share: Share, tmp_path: Path, *flags: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """A batch whose fix the customer answers at their terminal; the test watches connect's
    stderr and answers only once it says it waits. Its stderr as it was then, too."""
    batch = technician.root / "cmds.txt"
    batch.write_text(BATCH)
    errors = tmp_path / f"connect-{len(flags)}.err"
    with errors.open("w") as stderr:
        proc = technician.popen(
            "connect", share.address, "--code", share.code, "--ticket", "T-1",
            "--scope", "diagnostics", "--scope", "fixes", "--batch", batch, *flags,
            stderr=stderr,
        )  # fmt: skip
    try:
        share.wait_for_stderr(QUESTION)
        share.type("y\n")
        share.wait_for_stderr("resolvectl flush-caches")  # the customer is asked the fix
        deadline = time.monotonic() + WAIT
        while WAITING not in (waiting := errors.read_text()):
            assert time.monotonic() < deadline and proc.poll() is None, waiting
            time.sleep(0.05)
        share.type("n\n")
        stdout, _ = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, errors.read_text())
    return done, waiting


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_a_batch_says_it_waits_for_the_customer_and_keeps_headers_off_stdout(
    tmp_path: Path, people: tuple[Person, Person], as_json: bool
) -> None:
    technician, customer = people
    flags = ("--json",) if as_json else ()
    policy = customer.root / "policy.toml"
    scopes = ("--scope", "diagnostics", "--scope", "fixes")
    with sharing(customer, "--policy", policy, *scopes, logs=tmp_path, terminal=True) as share:
        done, waiting = run_batch(technician, share, tmp_path, *flags)
    # 5. Said once, on stderr, while the customer decided (the refusal came after it).
    assert waiting.rstrip().endswith(WAITING), waiting
    assert done.stderr.count(WAITING) == 1, done.stderr
    assert "cmds.txt, line 2: refused: the customer declined" in done.stderr, done.stderr
    assert done.returncode == 3, done.stderr
    # stderr's lines for people, the same in both modes.
    said = done.stderr.splitlines()
    assert said[0].startswith("Connecting to "), said
    assert "== df -h (exit 0)" in said and "== df -i (exit 0)" in said, said
    assert said[-1] == "recap: ok=1 failed=0 refused=1 (exit 3: a command was refused)", said
    # 6. stdout: the commands' output alone, or JSON lines alone.
    assert "==" not in done.stdout and "waiting" not in done.stdout, done.stdout
    if as_json:
        found = [json.loads(line) for line in done.stdout.splitlines()]
        assert [f["type"] for f in found] == ["result", "result", "summary"], found
        assert "Filesystem" in found[0]["stdout"]
    else:
        assert done.stdout.lstrip().startswith("Filesystem"), done.stdout


def test_the_plain_prompt_exits_0_after_a_refusal_too(
    tmp_path: Path, people: tuple[Person, Person]
) -> None:
    """The prompt on a terminal whose output is piped: the same rule as the full prompt."""
    import pty

    technician, customer = people
    policy = customer.root / "policy.toml"
    with sharing(customer, "--policy", policy, logs=tmp_path) as share:
        controller, terminal = pty.openpty()
        try:
            proc = technician.popen(
                "connect", share.address, "--code", share.code, "--ticket", "T-1",
                stdin=terminal,
            )  # fmt: skip
            os.close(terminal)
            os.write(controller, b"read ~/.ssh/id_rsa\nrun true\nshell\nexit\n")
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            os.close(controller)
    assert stdout.startswith("toolkit> "), stdout  # the plain prompt, on the pipe
    assert "refused:" in stderr and "shell: needs the interactive prompt" in stderr, stderr
    assert proc.returncode == 0, stderr
