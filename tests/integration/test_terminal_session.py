"""`toolkit connect` and `toolkit share` on real terminals (tmux): what each person sees and does.

The technician completes and runs commands at the prompt, cancels one with
Ctrl-C, opens the granted shell, types a password at `read -s` and at a
`sudo -S`-style prompt, resizes the window and comes back with `~.`; neither
transcript holds a password, both hold the echoed input, and the recorded
shell plays back in `asciinema cat` as the technician saw it. The customer
watches the live view, declines a fix outside the scope there, and ends
everything with `q`.
"""

from __future__ import annotations

import os
import pwd
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import tool
from tests.integration.share_process import EMAIL, NAME, Person, sharing
from tests.integration.terminal import Tmux
from tests.integration.test_share_connect import (
    NOTES,
    SLEEP,
    customer_copy,
    events,
    technician_transcript,
    verified,
)
from toolkit.transcript.models import Event

READ_SECRET = "hunter2-read-s-secret"
SUDO_SECRET = "s3cret-sudo-password"
USER = pwd.getpwuid(os.getuid()).pw_name
FAKE_SUDO = (
    "fake_sudo() { stty -echo; printf '[sudo] password for %s: ' \"$USER\" >&2;"
    ' read -r pw; stty echo; echo; echo "sudo read ${#pw} chars"; }'
)
PROMPT = "toolkit>"  # (tmux drops trailing spaces)

pytestmark = pytest.mark.skipif(tool("tmux") is None, reason="tmux is not installed")


def lines_of(path: Path, code: str) -> str:
    return "".join(
        Event.from_line(line).data
        for line in path.read_bytes().splitlines()[1:]
        if Event.from_line(line).code == code
    )


def asciinema_cat(path: Path) -> str:
    asciinema = tool("asciinema")
    if asciinema is None or tool("script") is None:
        pytest.skip("asciinema or script is not installed (Debian packages asciinema, bsdutils)")
    done = subprocess.run(
        ["script", "-qec", f"{asciinema} cat {shlex.quote(str(path))}", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_prompt_shell_and_passwords_on_a_real_terminal(
    tmp_path: Path,
    people: tuple[Person, Person],
    signers: Path,
    tmux: Tmux,
) -> None:
    technician, customer = people
    policy = customer.root / "policy.toml"
    scopes = ("--scope", "diagnostics", "--scope", "shell")
    with sharing(customer, "--policy", policy, *scopes, logs=tmp_path) as share:
        tmux.start(
            "tech", technician, "connect", share.address, "--code", share.code,
            "--ticket", "T-1", *scopes,
        )  # fmt: skip
        tmux.wait_for("tech", PROMPT)
        # The status line, then completion of a command and of a path the agent lists.
        screen = tmux.wait_for("tech", "ticket T-1")
        assert "scope diagnostics, shell" in screen
        tmux.keys("tech", "he", "Tab")
        tmux.wait_for("tech", "toolkit> help\n")
        tmux.keys("tech", "Enter")
        # The help is longer than the screen with the Linux plugin's procedures: it opens
        # in the pager, the top first; q leaves it, back at the prompt.
        tmux.wait_for("tech", "diagnostics on this machine:")
        tmux.keys("tech", "q")
        # A new prompt under "toolkit> help", not that line itself: keys typed before the
        # pager has closed would go to the pager.
        tmux.wait_for("tech", PROMPT, count=2)
        tmux.keys("tech", "read ~/no", literal=True)
        tmux.keys("tech", "Tab")
        tmux.wait_for("tech", "read ~/notes.txt")
        tmux.keys("tech", "Enter")
        tmux.wait_for("tech", NOTES.strip())
        tmux.type("tech", "run uname -a")
        tmux.wait_for("tech", "exit 0")
        # Ctrl-C cancels the running command, not the session.
        tmux.type("tech", f"run sleep {SLEEP}")
        time.sleep(0.8)  # the sleep runs on the agent
        tmux.keys("tech", "C-c")
        tmux.wait_for("tech", "cancelled", timeout=5)
        # The shell.
        tmux.type("tech", "shell")
        tmux.wait_for("tech", f"{USER}@")
        tmux.type("tech", "echo visible-$((6*7))")
        tmux.wait_for("tech", "visible-42")
        tmux.type("tech", "read -s X; echo read ${#X} chars")
        time.sleep(0.3)
        tmux.type("tech", READ_SECRET)
        tmux.wait_for("tech", f"read {len(READ_SECRET)} chars")
        tmux.type("tech", FAKE_SUDO)
        tmux.type("tech", "fake_sudo")
        tmux.wait_for("tech", f"password for {USER}: ")
        tmux.type("tech", SUDO_SECRET)
        tmux.wait_for("tech", f"sudo read {len(SUDO_SECRET)} chars")
        tmux.resize("tech", 90, 27)
        time.sleep(0.3)
        tmux.type("tech", "stty size")
        tmux.wait_for("tech", "27 90")
        tmux.keys("tech", "Enter")
        tmux.keys("tech", "~.", literal=True)
        shown = tmux.wait_for("tech", "[back at the toolkit prompt")
        tmux.type("tech", "run true")
        tmux.wait_for("tech", "exit 0", count=2)
        tmux.type("tech", "exit")
        shown = tmux.wait_for("tech", "[exit ")
        # The prompt's exit is the session's own end (issue 15): the cancelled run was shown.
        assert "[exit 0]" in shown, shown
        assert share.wait(10) == 0

    for secret in (READ_SECRET, SUDO_SECRET):
        assert secret not in shown  # never echoed on the technician's screen either
    history = (technician.root / "state" / "toolkit" / "history").read_text()
    assert "run uname -a" in history and "shell" in history  # for the next session
    mine = technician_transcript(technician)
    theirs = customer_copy(share.stderr())
    verified(technician, mine, signers)
    verified(customer, theirs, theirs.with_name(theirs.name + ".allowed_signers"))
    for path in (mine, theirs):
        data = path.read_text()
        assert READ_SECRET not in data and SUDO_SECRET not in data, path
        typed = lines_of(path, "i")
        for seen in ("echo visible-$((6*7))", "read -s X", "fake_sudo", "stty size"):
            assert seen in typed, (path, typed)
        assert "90x27" in lines_of(path, "r")
        found = events(path)
        assert sum(e["type"] == "input_withheld" for e in found) == 2, found
        sleep = [e for e in found if e.get("argv") == ["sleep", SLEEP]]
        assert sleep and sleep[-1].get("error") == "cancelled", sleep
    assert lines_of(mine, "i") == lines_of(theirs, "i")
    # What the technician saw of the shell is what the transcript plays back.
    played = asciinema_cat(mine)
    shell_part = shown[shown.index(f"{USER}@") : shown.index("[back at the toolkit prompt")]
    for line in shell_part.splitlines():
        if line.strip():
            assert line.strip() in played, (line, played)
    assert READ_SECRET not in played and SUDO_SECRET not in played


def test_customer_sees_the_session_declines_a_fix_and_q_ends_it_for_both(
    people: tuple[Person, Person],
    signers: Path,
    tmux: Tmux,
) -> None:
    technician, customer = people
    code_file = customer.root / "code"
    scopes = ("--scope", "diagnostics", "--scope", "shell")
    tmux.start(
        "cust", customer, "share", "--policy", customer.root / "policy.toml",
        "--code-file", code_file, *scopes, width=120, height=45,
    )  # fmt: skip
    listening = tmux.wait_for("cust", "Listening on ")
    address = listening.split("Listening on ", 1)[1].split(",", 1)[0]
    code = code_file.read_text().strip()
    tmux.start("tech", technician, "connect", address, "--code", code, "--ticket", "T-7", *scopes)
    tmux.wait_for("cust", "Allow this technician in? [y/n] (n): ")
    tmux.type("cust", "y")
    tmux.wait_for("tech", PROMPT)
    view = tmux.wait_for("cust", "session running")
    for text in (NAME, EMAIL, "SHA256:", "NOT trusted", "T-7", "diagnostics, shell"):
        assert text in view, text
    # A fix outside the granted scope is asked in the view; Enter is the default: no.
    tmux.type("tech", "fix clear-thumbnails")
    asked = tmux.wait_for("cust", "outside the approved scope")
    assert "$ rm -rf -- " in asked and "y = yes, n or Enter = no" in asked
    tmux.keys("cust", "Enter")
    tmux.wait_for("tech", "refused: the customer declined the fix clear-thumbnails")
    # The shell is mirrored, read-only.
    tmux.type("tech", "shell")
    tmux.wait_for("tech", f"{USER}@")
    tmux.type("tech", "echo mirrored-$((7*6))")
    tmux.wait_for("cust", "mirrored-42")
    assert "the technician's shell (read-only)" in tmux.screen("cust")
    # q: both sides end at once.
    tmux.keys("cust", "q")
    started = time.monotonic()
    tmux.wait_for("tech", "The customer ended the session", timeout=5)
    took = time.monotonic() - started
    assert took < 1.0, took
    tech_screen = tmux.wait_for("tech", "[exit ")
    assert "[exit 3]" in tech_screen
    cust_screen = tmux.wait_for("cust", "[exit ")
    assert "] you ended the session (q)" in cust_screen  # the log, once the view is gone
    assert "Your copy of the transcript:" in cust_screen
    why = "the customer ended the session (q)"
    mine = technician_transcript(technician, "T-7")
    assert why in verified(technician, mine, signers)["end_reason"].lower()
    assert why in events(mine)[-1]["reason"].lower()
    theirs = customer_copy(cust_screen)
    trust = theirs.with_name(theirs.name + ".allowed_signers")
    assert verified(customer, theirs, trust)["end_reason"] == why
    assert events(theirs)[-1]["reason"] == why
    assert any(e.get("op") == "fix" and e["type"] == "refusal" for e in events(theirs))
    assert "mirrored-42" in lines_of(theirs, "o")
