"""The supervisor's first use (issue 15): one real session, then verify, the ticket, show, play.

One session is run the way a technician runs it (`toolkit connect` on a tmux
terminal, `toolkit share --yes` on the other side): a Tab completion, a
read, a listing, runs (one fails), a diagnostic, an approved fix, two
refusals, a shell. Then the supervisor's tools are driven as a person would:
`toolkit verify` on both copies and the ticket's comment count the session
alike; the technician's transcript plays in `asciinema play` on a terminal
with every output line at its left edge; `toolkit show` lists the timeline
of either copy, and of a tampered one only what verifies.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import tool
from tests.integration.share_process import Person, sharing
from tests.integration.terminal import Tmux
from tests.integration.test_share_connect import (
    NOTES,
    customer_copy,
    events,
    make_customer,
    make_technician,
    technician_transcript,
)
from toolkit.transcript.models import Event

PROMPT = "toolkit>"
USER = pwd.getpwuid(os.getuid()).pw_name
#: Three lines from a pipe: each must start at the left edge when played back.
SEQ = ["seq", "-f", "staircase-%g", "3"]
POLICY = """\
[files]
allow = ["~/notes.txt", "~/.ssh/**"]
[commands]
diagnostics = [["uname", "-a"], ["false"], ["seq", "-f", "staircase-%g", "3"]]
"""
SCOPES = ("--scope", "diagnostics", "--scope", "fixes", "--scope", "shell")
#: What the session below does, counted as docs/transcript-format.md says.
OPERATIONS = 8  # read, list, run uname, run seq, diag, fix, run false, shell
REFUSALS = 2  # read ~/.ssh/id_rsa, run id -un

pytestmark = pytest.mark.skipif(tool("tmux") is None, reason="tmux is not installed")


@dataclass(frozen=True)
class Session:
    root: Path
    technician: Person
    customer: Person
    mine: Path  # the technician's transcript, attached to the ticket
    theirs: Path  # the customer's copy
    trust: Path  # the allowed_signers line share wrote for the customer's copy
    signers: Path  # the technician's allowed_signers
    comment: str  # the ticket's comment, as stored with the attachments


@pytest.fixture(scope="module")
def session(
    tmp_path_factory: pytest.TempPathFactory,
    identity: Path,
    signers: Path,
) -> Session:
    root = tmp_path_factory.mktemp("evidence")
    technician = make_technician(root / "technician", identity)
    customer = make_customer(root / "customer")
    (customer.root / "policy.toml").write_text(POLICY)
    tmux = Tmux(root)
    try:
        policy = ("--policy", customer.root / "policy.toml")
        with sharing(customer, *policy, *SCOPES, logs=root / "logs") as share:
            tmux.start(
                "tech", technician, "connect", share.address, "--code", share.code,
                "--ticket", "T-15", *SCOPES,
            )  # fmt: skip
            tmux.wait_for("tech", PROMPT)
            tmux.wait_for("tech", "ticket T-15")
            # A look-up for Tab completion, then the read it completed.
            tmux.keys("tech", "read ~/no", literal=True)
            tmux.keys("tech", "Tab")
            tmux.wait_for("tech", "read ~/notes.txt")
            tmux.keys("tech", "Enter")
            tmux.wait_for("tech", NOTES.strip())
            steps = [
                ("ls ~", "notes.txt"),
                ("run uname -a", "exit 0"),
                (shlex.join(["run", *SEQ]), "staircase-3"),
                ("diag system", "df -h  exit"),
                ("fix clear-thumbnails", "thumbnails  exit 0"),
                ("read ~/.ssh/id_rsa", "refused"),
                ("run id -un", "refused: "),
                ("run false", "exit 1"),
            ]
            for typed, result in steps:
                seen = tmux.screen("tech", history=True).count(result)
                tmux.type("tech", typed)
                tmux.wait_for("tech", result, count=seen + 1)
                if typed == "run id -un":
                    # A time checkpoint (every 5 s) covers what came so far: the rest
                    # of the session is after it, so a tampered copy has a valid prefix.
                    _wait_for_a_checkpoint(technician.root)
            tmux.type("tech", "shell")
            tmux.wait_for("tech", f"{USER}@")
            tmux.type("tech", "echo shell-$((6*7))")
            tmux.wait_for("tech", "shell-42")
            tmux.type("tech", "exit")
            tmux.wait_for("tech", "[back at the toolkit prompt")
            tmux.type("tech", "exit")
            screen = tmux.wait_for("tech", "[exit ")
            assert share.wait(10) == 0, share.stderr()
            share_stderr = share.stderr()
    finally:
        tmux.kill()
    # Something was refused, and shown then; `exit` is the session's own end (round 2): 0.
    assert "[exit 0]" in screen, screen
    mine = technician_transcript(technician, "T-15")
    theirs = customer_copy(share_stderr)
    ticket = technician.toolkit("tickets", "show", "T-15", "--json")
    assert ticket.returncode == 0, ticket.stderr
    comments = {a["comment"] for a in json.loads(ticket.stdout)["attachments"] if a["comment"]}
    assert len(comments) == 1, comments
    return Session(
        root,
        technician,
        customer,
        mine,
        theirs,
        theirs.with_name(theirs.name + ".allowed_signers"),
        signers,
        comments.pop(),
    )


def _wait_for_a_checkpoint(root: Path, timeout: float = 20.0) -> None:
    """Until a checkpoint in the technician's transcript covers the last refusal."""
    deadline = time.monotonic() + timeout

    def covered() -> bool:
        for cast in root.rglob("*.cast"):
            data = cast.read_bytes()
            refused = data.find(b'\\"argv\\":[\\"id\\",\\"-un\\"]')
            if refused >= 0 and data.find(b', "c", "', refused) >= 0:
                return True
        return False

    while not covered():
        assert time.monotonic() < deadline, "no checkpoint after the refusal"
        time.sleep(0.2)


def verify_json(person: Person, path: Path, trust: Path) -> dict[str, Any]:
    done = person.toolkit("verify", "--json", "--allowed-signers", trust, path)
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0 and report["verdict"] == "SEALED", (report, done.stderr)
    return report


# -- 2. one count, everywhere ----------------------------------------------------------


def test_verify_the_ticket_and_the_customers_copy_count_the_session_alike(
    session: Session,
) -> None:
    mine = verify_json(session.technician, session.mine, session.signers)
    theirs = verify_json(session.customer, session.theirs, session.trust)
    counted = (OPERATIONS, REFUSALS)
    assert (mine["operations"], mine["refusals"]) == counted, mine
    assert (theirs["operations"], theirs["refusals"]) == counted, theirs
    assert mine["lookups"] == theirs["lookups"] >= 1
    assert f"Operations: {OPERATIONS}, refusals: {REFUSALS}," in session.comment, session.comment
    assert f"completion look-ups: {mine['lookups']} (not counted)" in session.comment
    # The comment lists each counted operation once, look-ups and session messages not.
    listed = [
        line
        for line in session.comment.splitlines()
        if line.startswith("  ") and not line.startswith("  approval ")
    ]
    assert len(listed) == OPERATIONS + REFUSALS, session.comment
    assert sum("refused" in line for line in listed) == REFUSALS
    # The customer's copy holds more operation events (hello, end): not counted.
    ops = [e.get("op") for e in events(session.theirs) if e["type"] == "operation"]
    assert "hello" in ops and "end" in ops
    # The human report says the same.
    for person, path, trust in (
        (session.technician, session.mine, session.signers),
        (session.customer, session.theirs, session.trust),
    ):
        done = person.toolkit("verify", "--allowed-signers", trust, path)
        assert done.returncode == 0, done.stderr
        row = f"  operations   {OPERATIONS}, refusals {REFUSALS}\n"
        assert row in done.stdout, done.stdout
        assert f"  look-ups     {mine['lookups']} (Tab completion" in done.stdout


# -- 1. played back, output lines start at the left edge ---------------------------------


def test_the_technicians_transcript_plays_without_a_staircase(session: Session) -> None:
    asciinema = tool("asciinema")
    if asciinema is None:
        pytest.skip("asciinema is not installed (Debian package asciinema)")
    tmux = Tmux(session.root)
    try:
        played = _play(tmux, "mine", asciinema, session.mine)
        theirs = _play(tmux, "theirs", asciinema, session.theirs)
    finally:
        tmux.kill()
    lines = played.splitlines()
    for n in (1, 2, 3):
        assert f"staircase-{n}" in lines, played  # a whole screen line, from column 0
    # The diagnostic's steps (several lines each) too: df's header starts its line.
    assert any(line.startswith("Filesystem") for line in lines), played
    assert any(line.startswith("Mem:") for line in lines), played
    # In the file: CRLF line ends, no bare LF anywhere in the output.
    outputs = _outputs(session.mine)
    assert "staircase-1\r\nstaircase-2\r\nstaircase-3\r\n" in outputs
    assert re.search(r"(?<!\r)\n", outputs) is None, "a bare LF is left in the output"
    # The shell's output (a PTY's, CRLF already) is in both copies as it came, and the
    # customer's copy (which records no command output) plays its lines alike.
    shell = _outputs(session.theirs)
    assert "shell-42\r\n" in shell and shell in outputs
    assert "shell-42" in theirs.splitlines(), theirs


def _outputs(cast: Path) -> str:
    """Every ``o`` line's data, joined."""
    events = [Event.from_line(line) for line in cast.read_bytes().splitlines()[1:]]
    return "".join(e.data for e in events if e.code == "o")


def _play(tmux: Tmux, name: str, asciinema: str, cast: Path) -> str:
    """``asciinema play`` on a 100x30 tmux terminal; the screen and its history after."""
    command = f"{shlex.quote(asciinema)} play -s 20 -i 0.1 {shlex.quote(str(cast))}"
    tmux._run(
        "new-session", "-d", "-s", name, "-x", "100", "-y", "30",
        "sh", "-c", f'{command}; echo "[played $?]"; sleep 600',
    )  # fmt: skip
    return tmux.wait_for(name, "[played 0]", timeout=60)


# -- 5. the timeline -------------------------------------------------------------------------


def show(person: Person, path: Path, trust: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return person.toolkit("show", "--allowed-signers", trust, *args, path)


def test_show_lists_the_technicians_copy_in_order_with_times(session: Session) -> None:
    done = show(session.technician, session.mine, session.signers)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "  verdict      SEALED" in out and out.rstrip().endswith(f"SEALED {session.mine}")
    assert "  copy         the technician's copy" in out
    rows = _timeline(out)
    labels = [label for _, label, _ in rows]
    assert labels[0] == "consent" and labels[-1] == "end", rows
    expected = [
        ("look-up", "list"),
        ("operation", "read ~/notes.txt: ok"),
        ("operation", "ls ~: ok"),
        ("operation", "run uname -a: exit 0"),
        ("operation", "diag system"),
        ("approval", "fix clear-thumbnails: approved by --yes at 20"),
        ("operation", "fix clear-thumbnails"),
        ("refusal", "read ~/.ssh/id_rsa: refused"),
        ("refusal", "run id -un: refused"),
        ("operation", "run false: exit 1"),
        ("shell start", "xterm"),
        ("shell end", "exit 0"),
        ("end", "the technician ended the session"),
    ]
    _in_order(rows, expected)
    assert "approved" in rows[0][2] and "granted diagnostics, fixes, shell" in rows[0][2]
    # Times: each row has one, and they never go back.
    times = [when for when, _, _ in rows]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in times), times
    assert times == sorted(times)


def test_show_lists_the_customers_copy_alike(session: Session) -> None:
    done = show(session.customer, session.theirs, session.trust)
    assert done.returncode == 0, done.stderr
    assert "  copy         the customer's copy, sealed by agent@" in done.stdout
    rows = _timeline(done.stdout)
    expected = [
        ("consent", "approved"),
        ("session", "the technician's toolkit connected"),
        ("look-up", "list"),
        ("operation", "read "),
        ("approval", "fix clear-thumbnails: approved by --yes at 20"),
        ("operation", "fix clear-thumbnails"),
        ("refusal", "read "),
        ("refusal", "run id -un"),
        ("operation", "run false: exit 1"),
        ("shell start", "xterm"),
        ("shell end", "exit 0"),
        ("session", "the technician's toolkit asked to end the session"),
        ("end", "the technician ended the session"),
    ]
    _in_order(rows, expected)
    counted = [label for _, label, _ in rows if label in ("operation", "refusal", "shell end")]
    assert len(counted) == OPERATIONS + REFUSALS


def test_show_json_has_the_verdict_and_every_event(session: Session) -> None:
    done = show(session.technician, session.mine, session.signers, "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["verdict"] == "SEALED" and shown["copy"] == "technician"
    assert shown["not_shown_bytes"] == 0
    found = shown["events"]
    assert [e["fields"] for e in found] == events(session.mine)
    counted = [e["counted"] for e in found]
    assert counted.count("operation") == OPERATIONS and counted.count("refusal") == REFUSALS
    assert all(e["at"] == shown_start(shown) + e["t"] for e in found)


def shown_start(shown: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(shown["started"]).timestamp()


@pytest.fixture
def tampered(session: Session, tmp_path: Path) -> tuple[Path, int]:
    """A copy of the technician's transcript with ``run false``'s exit status changed to 0
    (after the mid-session checkpoint), and the line it is on."""
    lines = session.mine.read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if b'\\"argv\\":[\\"false\\"]' in line)
    assert b'\\"exit_status\\":1' in lines[at]
    lines[at] = lines[at].replace(b'\\"exit_status\\":1', b'\\"exit_status\\":0')
    bad = tmp_path / session.mine.name
    bad.write_bytes(b"".join(lines))
    (tmp_path / f"{bad.name}.sig").write_bytes(Path(f"{session.mine}.sig").read_bytes())
    return bad, at + 1


def test_show_of_a_tampered_copy_lists_only_what_verifies(
    session: Session, tampered: tuple[Path, int]
) -> None:
    bad, line = tampered
    done = show(session.technician, bad, session.signers)
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "  verdict      TAMPERED: checkpoint" in out
    assert out.rstrip().endswith(f"TAMPERED {bad}")
    assert "Only the verified part is listed" in out
    assert "run false" not in out  # the changed event is not shown as if it were true
    rows = _timeline(out)
    _in_order(rows, [("consent", "approved"), ("refusal", "run id -un")])
    assert rows[-1][1] != "end", rows  # the end is after the valid prefix
    verified = show(session.technician, bad, session.signers, "--json")
    shown = json.loads(verified.stdout)
    assert shown["verdict"] == "TAMPERED" and shown["not_shown_bytes"] > 0
    assert shown["events"] and all(e["line"] < line for e in shown["events"])


# -- 3 and 4. verify of a tampered file, of files that are no transcripts ----------------------


def test_verify_of_a_tampered_copy_reports_its_verified_prefix(
    session: Session, tampered: tuple[Path, int]
) -> None:
    bad, _ = tampered
    done = session.technician.toolkit("verify", "--allowed-signers", session.signers, bad)
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert out.rstrip().endswith(f"TAMPERED {bad}"), out
    # What the valid prefix shows: every operation up to the checkpoint, said to be only that.
    size = bad.stat().st_size
    report = json.loads(
        session.technician.toolkit(
            "verify", "--json", "--allowed-signers", session.signers, bad
        ).stdout
    )
    assert report["verdict"] == "TAMPERED" and report["prefix_only"] is True
    assert (report["operations"], report["refusals"]) == (OPERATIONS - 2, REFUSALS), report
    assert report["duration"] is None and report["covered_seconds"] >= 5.0
    prefix = f"in the verified part only ({report['valid_bytes']} of {size} bytes)"
    assert f"  operations   {OPERATIONS - 2}, refusals {REFUSALS}, " in out, out
    assert prefix in out, out
    assert "  duration     unknown; the verified part runs 0m 0" in out, out
    assert "  ended        -" in out


def test_verify_names_each_file_that_is_no_transcript(session: Session, tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "a.cast").write_bytes(session.mine.read_bytes())
    (folder / "a.cast.sig").write_bytes(Path(f"{session.mine}.sig").read_bytes())
    (folder / "notes.txt").write_text("hello\n")
    (folder / "empty").write_text("")
    files = sorted(folder.iterdir())  # as the shell expands dir/*
    done = session.technician.toolkit("verify", "--allowed-signers", session.signers, *files)
    assert done.returncode == 2, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if "not a toolkit transcript" in line]
    # a.cast.sig is a.cast's seal, given too: part of it, not named (issue 15, evid2).
    assert len(said) == 2, done.stderr  # empty, notes.txt
    for name in ("empty", "notes.txt"):
        assert sum(str(folder / name) in line for line in said) == 1, (name, said)
    assert done.stderr.count("toolkit verify reads the .cast files") == 1  # the hint, once
    assert f"SEALED {folder / 'a.cast'}" in done.stdout


# -- helpers ----------------------------------------------------------------------------------


def _timeline(out: str) -> list[tuple[str, str, str]]:
    """(time, label, text) of each row under the timeline's heading."""
    rows = []
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("time (UTC)"))
    for line in lines[start + 1 :]:
        found = re.match(r"^  (\S+)\s+(\S+)\s{2}(.{12}) (.*)$", line)
        if found is None:
            break
        rows.append((found.group(1), found.group(3).strip(), found.group(4)))
    return rows


def _in_order(rows: list[tuple[str, str, str]], expected: list[tuple[str, str]]) -> None:
    """Each (label, text) of ``expected`` matches a row, in this order."""
    at = 0
    for label, text in expected:
        for i in range(at, len(rows)):
            if rows[i][1] == label and text in rows[i][2]:
                at = i + 1
                break
        else:
            shown = "\n".join(" | ".join(row) for row in rows)
            raise AssertionError(f"no {label!r} row with {text!r} after row {at}:\n{shown}")
