"""The customer's first use of `toolkit share`, in real terminals (tmux) and real processes.

What a new customer tripped over (issue 15): the live view cut its newest
shell lines at 120x35 and showed none at 80x24; `trusted NO` said nothing
about what to do; a fix was asked without its summary and logged as a cut-off
sentence; the technician's Tab-completion look-ups showed as actions; a
decline left share listening; `q` exited 130, the code for Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import tool
from tests.integration.share_process import (
    RUN_TIMEOUT,
    START_TIMEOUT,
    Person,
    Share,
    end,
    sharing,
    stop,
)
from tests.integration.terminal import Tmux
from tests.integration.test_share_connect import (
    customer_copy,
    events,
    start_connect,
    technician_transcript,
)
from tests.session_support import Customer, connect_to
from tests.threats.agent_support import running_agent
from toolkit.agent.server import CodeNotice
from toolkit.consent import Declined

PROMPT = "toolkit>"
USER = pwd.getpwuid(os.getuid()).pw_name
HELP = "q ends the session at once (exit 0); so does Ctrl-C (exit 130)"
UNTRUSTED = "trusted      NO: key not in your allowed_signers; check it with your provider"
FLUSH_DNS = "the fix flush-dns (Flush systemd-resolved's DNS cache): 1 command"
QUESTION = "Allow this technician in? [y/n] (n): "
DECLINED_HINT = "Type n and Enter for a new code; Enter or q ends toolkit share."
SCOPES = ("--scope", "diagnostics", "--scope", "fixes", "--scope", "shell")

needs_tmux = pytest.mark.skipif(tool("tmux") is None, reason="tmux is not installed")


def wait_on_screen(tmux: Tmux, name: str, text: str, timeout: float = 20.0) -> str:
    """The visible screen (no history) once the live view shows ``text``: what the person sees.

    The view redraws itself from the bottom up; a frame is whole once its last line,
    the help line, is there too.
    """
    deadline = time.monotonic() + timeout
    while True:
        shown = tmux.screen(name)
        if text in joined(shown) and HELP in shown:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never showed in {name}:\n{shown}")
        time.sleep(0.05)


def joined(screen: str) -> str:
    """The screen's text with each panel row's borders dropped and rows joined by spaces,
    so that a sentence the panel wrapped reads as one."""
    return " ".join(row.strip().strip("│").strip() for row in screen.splitlines())


# -- the live view, at 80x24 and 120x35 ----------------------------------------------------


@needs_tmux
@pytest.mark.parametrize(("width", "height", "answer"), [(80, 24, "n"), (120, 35, "y")])
def test_the_live_view_at_first_use(
    people: tuple[Person, Person], tmux: Tmux, width: int, height: int, answer: str
) -> None:
    technician, customer = people
    code_file = customer.root / "code"
    tmux.start(
        "cust", customer, "share", "--policy", customer.root / "policy.toml",
        "--code-file", code_file, *SCOPES, width=width, height=height,
    )  # fmt: skip
    listening = tmux.wait_for("cust", "Listening on ")
    address = listening.split("Listening on ", 1)[1].split(",", 1)[0]
    code = code_file.read_text().strip()
    tmux.start("tech", technician, "connect", address, "--code", code, "--ticket", "T-7", *SCOPES)

    # Consent: an unknown key says what it means and what to do, on one row.
    asked = tmux.wait_for("cust", QUESTION)
    assert f"  {UNTRUSTED}" in asked.splitlines(), asked
    assert len(f"  {UNTRUSTED}") <= width  # one row, even at 80 columns
    tmux.type("cust", "y")
    tmux.wait_for("tech", PROMPT)
    wait_on_screen(tmux, "cust", "session running")

    # Tab completion lists the customer's home: marked as completion, folded, not an action.
    tmux.keys("tech", "read ~/no", literal=True)
    tmux.keys("tech", "Tab")
    tmux.wait_for("tech", "read ~/notes.txt")
    tmux.keys("tech", "C-u")
    view = wait_on_screen(tmux, "cust", "completion (Tab): ")
    assert re.search(r"\(\d+ look-ups?\)", view), view
    assert not re.search(r"\d\d:\d\d:\d\d list ", view), view

    # A fix: its summary above its exact commands; the log keeps a whole sentence.
    tmux.type("tech", "fix flush-dns")
    asked = wait_on_screen(tmux, "cust", "y = yes, n or Enter = no")
    assert "The technician asks to run the fix flush-dns" in asked, asked
    summary = asked.index("Flush systemd-resolved's DNS cache")
    assert summary < asked.index("$ resolvectl flush-caches"), asked
    tmux.keys("cust", answer)
    said = "approved" if answer == "y" else "declined"
    wait_on_screen(tmux, "cust", f"you {said} {FLUSH_DNS}")
    if answer == "y":
        wait_on_screen(tmux, "cust", "fix flush-dns -> exit")
    else:  # the customer's no is said once, as they gave it (test_first_use_cust2.py)
        tmux.wait_for("tech", "refused: the customer declined the fix flush-dns")

    # The shell prints more lines than the view can hold: the newest stay in sight.
    tmux.type("tech", "shell")
    tmux.wait_for("tech", f"{USER}@")
    tmux.type("tech", "seq 1 80; echo tail-marker-$((6*7))")
    tmux.wait_for("tech", "tail-marker-42")
    view = wait_on_screen(tmux, "cust", "tail-marker-42")
    rows = view.rstrip("\n").splitlines()
    assert len(rows) <= height, view
    assert HELP in rows[-1], view  # nothing below was cut off
    assert "the technician's shell (read-only)" in view
    assert "..." not in view, view
    marker = next(i for i, row in enumerate(rows) if "tail-marker-42" in row)
    # The last lines of seq, right above the marker.
    assert [rows[marker - n].strip("│ ") for n in (2, 1)] == ["79", "80"], view
    assert any(re.search(r"[$#]\s*│?\s*$", row) for row in rows[marker + 1 :]), view  # prompt

    # q: the customer ends it on purpose: exit 0 (the technician hears it: 3).
    tmux.keys("cust", "q")
    cust_screen = tmux.wait_for("cust", "[exit ")
    assert "[exit 0]" in cust_screen, cust_screen
    assert "] you ended the session (q)" in cust_screen  # the log, once the view is gone
    assert "[exit 3]" in tmux.wait_for("tech", "[exit ")

    # Both transcripts record each look-up, marked, and the fix the customer decided on.
    theirs = events(customer_copy(cust_screen))
    mine = events(technician_transcript(technician, "T-7"))
    for found in (theirs, mine):
        looked = [e for e in found if e.get("op") == "list"]
        assert looked and all(e.get("purpose") == "completion" for e in looked), found
    assert [e.get("purpose") for e in theirs if e.get("op") == "list"] == [
        e.get("purpose") for e in mine if e.get("op") == "list"
    ]


@needs_tmux
def test_ctrl_c_in_the_live_view_still_exits_130(people: tuple[Person, Person], tmux: Tmux) -> None:
    technician, customer = people
    code_file = customer.root / "code"
    tmux.start("cust", customer, "share", "--code-file", code_file, width=80, height=24)
    listening = tmux.wait_for("cust", "Listening on ")
    address = listening.split("Listening on ", 1)[1].split(",", 1)[0]
    code = code_file.read_text().strip()
    tmux.start("tech", technician, "connect", address, "--code", code, "--ticket", "T-1")
    tmux.wait_for("cust", QUESTION)
    tmux.type("cust", "y")
    wait_on_screen(tmux, "cust", HELP)
    tmux.keys("cust", "C-c")
    assert "[exit 130]" in tmux.wait_for("cust", "[exit ")


# -- declining ends share, unless the customer asks for another code -------------------------


@pytest.mark.parametrize("ending", ["\n", "q\n"])
def test_a_decline_on_a_terminal_ends_share_unless_a_new_code_is_asked_for(
    people: tuple[Person, Person], tmp_path: Path, ending: str
) -> None:
    technician, customer = people
    policy = customer.root / "policy.toml"
    with sharing(customer, "--policy", policy, logs=tmp_path, terminal=True) as share:
        first = start_connect(technician, share, "run true\n")
        try:
            share.wait_for_stderr(QUESTION)
            share.type("n\n")
            _, declined = first.communicate(timeout=RUN_TIMEOUT)
        finally:
            end(first)
        assert first.returncode == 3 and "declined" in declined, declined
        assert share.line(1, timeout=5) == {
            "event": "declined",
            "reason": "declined",
            "ask": "new-code",
        }
        share.type(ending)  # Enter, or q
        assert share.wait(10) == 3, share.stderr()
    shown = share.stderr()
    assert "no session started, and the code is used up" in shown
    assert "No session ran: you declined the technician, and no new code was asked for" in shown
    assert len(share.lines) == 2  # no new code came


def test_a_decline_then_n_gives_a_new_code_and_the_session_runs(
    people: tuple[Person, Person], tmp_path: Path
) -> None:
    technician, customer = people
    policy = customer.root / "policy.toml"
    with sharing(customer, "--policy", policy, logs=tmp_path, terminal=True) as share:
        first = start_connect(technician, share, "run true\n")
        try:
            share.wait_for_stderr(QUESTION)
            share.type("n\n")
            first.communicate(timeout=RUN_TIMEOUT)
        finally:
            end(first)
        share.line(1, timeout=5)
        assert DECLINED_HINT not in share.stderr()  # --json: the declined line says it
        share.type("what\n")  # neither: told what to type, nothing ends
        share.wait_for_stderr(DECLINED_HINT)
        assert share.proc.poll() is None
        share.type("n\n")
        fresh = share.line(2, timeout=5)["code"]
        second = start_connect(technician, share, "run true\n", code=fresh)
        try:
            share.wait_for_stderr(QUESTION, count=2)
            share.type("y\n")
            _, approved = second.communicate(timeout=RUN_TIMEOUT)
        finally:
            end(second)
        assert second.returncode == 0, approved
        assert share.wait(10) == 0, share.stderr()


@contextmanager
def scripted(customer: Person, logs: Path, *args: str) -> Iterator[Share]:
    """`toolkit share --json ARGS` run by a script, without --yes: its stdin a pipe."""
    logs.mkdir(parents=True, exist_ok=True)
    err_path = logs / f"share-{time.monotonic_ns()}.err"
    with err_path.open("w") as err:
        proc = customer.popen("share", "--json", *args, stdin=subprocess.PIPE, stderr=err)
    share = Share(proc, err_path)
    reader = threading.Thread(target=share._read, daemon=True)
    reader.start()
    try:
        share.line(timeout=START_TIMEOUT)
        yield share
    finally:
        stop(proc)
        reader.join(5)
        end(proc)


def write(share: Share, line: str | None) -> None:
    """A line on share's stdin; None closes it."""
    assert share.proc.stdin is not None
    if line is None:
        share.proc.stdin.close()
        return
    share.proc.stdin.write(line + "\n")
    share.proc.stdin.flush()


def connect_and_wait(technician: Person, share: Share, code: str | None = None) -> str:
    """A technician who is turned away (share has nobody to ask): their stderr."""
    proc = start_connect(technician, share, "run true\n", code=code)
    try:
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        end(proc)
    # share had nobody to ask: the technician hears that, not "declined" (test_first_use_cust2)
    assert proc.returncode == 3 and "Nobody could be asked" in stderr, stderr
    return stderr


def test_json_a_script_asks_for_new_code_after_a_decline_and_its_end_of_input_ends_share(
    people: tuple[Person, Person], tmp_path: Path
) -> None:
    """No terminal and no --yes: nobody to ask, declined in those words; stdin still a pipe."""
    technician, customer = people
    with scripted(customer, tmp_path) as share:
        connect_and_wait(technician, share)
        assert share.line(1, timeout=5) == {
            "event": "declined",
            "reason": "nobody-to-ask",
            "ask": "new-code",
        }
        write(share, "new-code")
        fresh = share.line(2, timeout=5)["code"]
        assert fresh != share.code
        connect_and_wait(technician, share, fresh)
        assert share.line(3, timeout=5)["event"] == "declined"
        write(share, None)  # the script is done: end of input
        assert share.wait(10) == 3, share.stderr()
    shown = share.stderr()
    assert shown.count("No terminal to ask you on (use --yes in scripts): declined.") == 2
    assert "No session ran: there was no terminal to ask you on" in shown
    assert len(share.lines) == 4


def test_json_with_nobody_to_ask_for_a_new_code_a_decline_ends_share_at_once(
    people: tuple[Person, Person], tmp_path: Path
) -> None:
    technician, customer = people
    proc = customer.popen("share", "--json")  # stdin: /dev/null
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        host = f"{first['address']}:{first['port']}"
        done = technician.toolkit(
            "connect", host, "--code", first["code"], "--ticket", "T-1", "--batch", "-",
            stdin="run true\n",
        )  # fmt: skip
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        end(proc)
    assert done.returncode == 3 and "Nobody could be asked" in done.stderr, done.stderr
    assert proc.returncode == 3, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [{"event": "declined", "reason": "nobody-to-ask", "ask": None}]
    assert "No session ran: there was no terminal to ask you on. toolkit share ends." in err


def test_no_answer_in_time_is_its_own_reason(tmp_path: Path) -> None:
    class Silent(Customer):
        async def ask(self, request: Any) -> Any:  # type: ignore[override]
            await asyncio.sleep(60)

    async def main() -> list[CodeNotice]:
        notices: list[CodeNotice] = []
        async with running_agent(tmp_path, customer=Silent()) as (agent, screen, _):
            agent.settings.approval_timeout = 0.2
            agent.settings.code_unusable = notices.append
            with pytest.raises(Declined):
                await connect_to(agent)
            assert "no answer in time: declined" in screen.lines
        return notices

    assert asyncio.run(asyncio.wait_for(main(), 60)) == [CodeNotice("no-answer", {})]
