"""The supervisor's side, second pass (issue 15): what a newcomer still tripped over.

One real session on tmux terminals: the technician reads a file's tail and
head, stats it, opens the shell, detaches it (``~^Z``), stats again, goes
back to the shell and starts ``less``; the customer presses ``q`` in the
live view while ``less`` runs. Then the supervisor's tools, as a person
drives them: ``toolkit verify`` and ``toolkit show`` on both copies (the shell
cut off by the end is counted and ended in both; the detach and return are
in the technician's timeline; the customer's copy says what was read, and
how much, in words), both at 80 columns (wrapped at spaces, under the text's
own column), and ``toolkit verify DIR/*`` in the folder the copies sit in.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import tool
from tests.integration.share_process import EMAIL, TOOLKIT, Person
from tests.integration.terminal import Tmux
from tests.integration.test_share_connect import (
    events,
    make_customer,
    make_technician,
    technician_transcript,
)

PROMPT = "toolkit>"
USER = pwd.getpwuid(os.getuid()).pw_name
SCOPES = ("--scope", "diagnostics", "--scope", "shell")
#: read --tail, read --head, stat, stat (while detached), the shell.
OPERATIONS = 5

pytestmark = pytest.mark.skipif(tool("tmux") is None, reason="tmux is not installed")


@dataclass(frozen=True)
class Session:
    root: Path
    technician: Person
    customer: Person
    mine: Path
    theirs: Path
    trust: Path  # the customer's copy's allowed_signers line, beside it
    signers: Path  # the technician's allowed_signers


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, identity: Path, signers: Path) -> Session:
    root = tmp_path_factory.mktemp("evid2")
    technician = make_technician(root / "technician", identity)
    customer = make_customer(root / "customer")
    (customer.home / "notes.txt").write_text("".join(f"note {n}\n" for n in range(1, 9)))
    code_file = customer.root / "code"
    tmux = Tmux(root)
    try:
        tmux.start(
            "cust", customer, "share", "--yes", "--policy", customer.root / "policy.toml",
            "--code-file", code_file, *SCOPES, width=120, height=40,
        )  # fmt: skip
        listening = tmux.wait_for("cust", "Listening on ")
        address = listening.split("Listening on ", 1)[1].split(",", 1)[0]
        code = code_file.read_text().strip()
        tmux.start(
            "tech", technician, "connect", address, "--code", code, "--ticket", "T-15", *SCOPES
        )
        tmux.wait_for("tech", PROMPT)
        tmux.type("tech", "read ~/notes.txt --tail 2")
        tmux.wait_for("tech", "note 8")
        tmux.type("tech", "read ~/notes.txt --head 1")
        tmux.wait_for("tech", "note 1")
        tmux.type("tech", "stat ~/notes.txt")
        tmux.wait_for("tech", "-rw-r--r--")
        tmux.type("tech", "shell")
        tmux.wait_for("tech", f"{USER}@")
        tmux.type("tech", "echo inside-$((6*7))")
        tmux.wait_for("tech", "inside-42")
        # ~^Z: back at the prompt, the shell keeps running.
        tmux.keys("tech", "Enter")
        tmux.keys("tech", "~", literal=True)
        tmux.keys("tech", "C-z")
        tmux.wait_for("tech", "[back at the toolkit prompt; the shell keeps running")
        seen = tmux.screen("tech", history=True).count("-rw-r--r--")
        tmux.type("tech", "stat ~/notes.txt")
        tmux.wait_for("tech", "-rw-r--r--", count=seen + 1)
        assert "shell detached" in tmux.screen("tech")  # the status bar says so
        tmux.type("tech", "shell")
        _until_gone(tmux, "tech", "shell detached")  # the prompt has let go of the keys
        tmux.type("tech", "echo back-$((3*11))")
        tmux.wait_for("tech", "back-33")
        tmux.type("tech", "less ~/notes.txt")
        tmux.wait_for("tech", "note 5")
        # The customer ends the session while less runs.
        tmux.wait_for("cust", "note 5")
        tmux.keys("cust", "q")
        tech_screen = tmux.wait_for("tech", "[exit ")
        tmux.wait_for("cust", "[exit ")
    finally:
        tmux.kill()
    assert "[exit 3]" in tech_screen, tech_screen
    mine = technician_transcript(technician, "T-15")
    theirs = next(customer.root.rglob("*.cast"))
    return Session(
        root, technician, customer, mine, theirs,
        theirs.with_name(theirs.name + ".allowed_signers"), signers,
    )  # fmt: skip


def _until_gone(tmux: Tmux, name: str, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text in tmux.screen(name):
        assert time.monotonic() < deadline, tmux.screen(name)
        time.sleep(0.05)


def verify_json(person: Person, path: Path, trust: Path) -> dict[str, Any]:
    done = person.toolkit("verify", "--json", "--allowed-signers", trust, path)
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0 and report["verdict"] == "SEALED", (report, done.stderr)
    return report


def show(person: Person, path: Path, trust: Path) -> list[tuple[str, str]]:
    """``toolkit show`` off a terminal: its timeline as (event, what) rows."""
    done = person.toolkit("show", "--allowed-signers", trust, path)
    assert done.returncode == 0, done.stderr
    out = done.stdout.split("what\n", 1)[1]
    rows = []
    for line in out.splitlines():
        if not line.strip():
            break
        rows.append((line[24:36].strip(), line[37:]))
    return rows


# -- 1. a shell cut off by the session's end -----------------------------------------


def test_a_shell_cut_off_by_the_end_is_counted_and_ended_in_both_copies(session: Session) -> None:
    mine = verify_json(session.technician, session.mine, session.signers)
    theirs = verify_json(session.customer, session.theirs, session.trust)
    assert mine["operations"] == theirs["operations"] == OPERATIONS, (mine, theirs)
    for found in (events(session.mine), events(session.theirs)):
        ends = [e for e in found if e.get("op") == "shell" and e["type"] == "operation"]
        assert len(ends) == 1, found
        assert ends[0]["reason"] == "the session ended" and ends[0]["exit_status"] is None
        kinds = [e["type"] for e in found]
        assert kinds.index("shell_start") < found.index(ends[0]) < kinds.index("session_end")
    for person, path, trust in (
        (session.technician, session.mine, session.signers),
        (session.customer, session.theirs, session.trust),
    ):
        rows = show(person, path, trust)
        labels = [label for label, _ in rows]
        assert labels[-2:] == ["shell end", "end"], rows
        assert rows[-2][1] == "hung up: the session ended", rows
        assert "the customer ended the session (q)" in rows[-1][1].lower()


def test_detach_and_return_are_in_the_technicians_timeline(session: Session) -> None:
    rows = show(session.technician, session.mine, session.signers)
    labels = [label for label, _ in rows]
    start, detach = labels.index("shell start"), labels.index("shell detach")
    attach = labels.index("shell attach")
    assert start < detach < attach < labels.index("shell end"), rows
    between = [what for label, what in rows[detach:attach] if label == "operation"]
    assert between == ["stat ~/notes.txt: ok"], rows
    # The customer's copy does not know: the shell ran on.
    assert not any(e["type"].startswith("shell_") and e["type"] != "shell_start"
                   for e in events(session.theirs))  # fmt: skip


# -- 2. the customer's copy in words ------------------------------------------------------


def test_show_says_what_the_customers_copy_records_in_words(session: Session) -> None:
    rows = show(session.customer, session.theirs, session.trust)
    notes = f"{session.customer.home}/notes.txt"
    whats = [what for label, what in rows if label == "operation"]
    assert f"read {notes} --tail 2: ok" in whats, rows
    assert f"read {notes} --head 1: ok" in whats, rows
    assert whats.count(f"stat {notes}: ok") == 2, rows
    said = " ".join(what for _, what in rows)
    for dump in ("op=hello", "ok=true", "trusted false", "asked to end: ok"):
        assert dump not in said, rows
    assert "the technician's toolkit connected; the technician's copy is session " in said
    assert "no allowed_signers of the customer's vouched for the key" in said


# -- 2, 4. at 80 columns ---------------------------------------------------------------------


def _on_80_columns(session: Session, person: Person, *args: str | Path) -> str:
    tmux = Tmux(session.root / f"tmux-{args[0]}-{person.root.name}")
    try:
        tmux.start("t", person, *args, width=80, height=24)
        return tmux.wait_for("t", "[exit ")
    finally:
        tmux.kill()


@pytest.mark.parametrize("command", ["show", "verify"])
def test_at_80_columns_rows_wrap_at_spaces_under_their_own_column(
    session: Session, command: str
) -> None:
    # Short names, as a supervisor has them in a folder: a path longer than a line
    # is one word, kept whole.
    person = session.customer
    for suffix in ("", ".sig", ".allowed_signers"):
        shutil.copy(f"{session.theirs}{suffix}", person.root / f"s.cast{suffix}")
    screen = _on_80_columns(
        session, person, command, "--allowed-signers", "s.cast.allowed_signers", "s.cast"
    )
    # capture-pane -J joins what the terminal wrapped: every line here is one we wrote.
    lines = [line for line in screen.splitlines() if line.strip()]
    # Longer only where one word (a digest, a path) is longer than the room: kept whole.
    too_long = [line for line in lines if len(line) >= 80 and "ssh-keygen" not in line]
    assert all(len(line.split()) == 1 for line in too_long), screen
    assert f"<{EMAIL}>" in screen, screen  # not broken mid-word
    fingerprint = verify_json(session.customer, session.theirs, session.trust)["technician"]
    assert fingerprint["fingerprint"] in screen, screen  # a digest whole
    # A continuation starts under its row's value: the header rows' (column 15) and, in
    # show's timeline, the event's text (column 37), never under the time column.
    head, _, timeline = screen.partition("time (UTC)")
    timeline = timeline.partition("\n")[2]
    for part, indent in ((head, 15), (timeline, 37)):
        rows = [line for line in part.splitlines() if line.strip()]
        continued = [line for line in rows if line.startswith("   ")]
        assert all(line.startswith(" " * indent) for line in continued), screen
        assert continued or not part, screen


# -- 4. the counts, as the ticket says them ------------------------------------------------


def test_verify_says_operations_and_refusals_as_the_ticket_does(session: Session) -> None:
    done = session.technician.toolkit("verify", "--allowed-signers", session.signers, session.mine)
    assert done.returncode == 0, done.stderr
    assert f"  operations   {OPERATIONS}, refusals 0\n" in done.stdout, done.stdout
    assert "refused)" not in done.stdout


# -- 5. toolkit verify DIR/* ------------------------------------------------------------------


def test_verify_of_a_folder_takes_each_transcripts_companions_as_part_of_it(
    session: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    for cast in (session.mine, session.theirs):
        for name in (cast.name, cast.name + ".sig", cast.name + ".allowed_signers"):
            if (cast.parent / name).exists():
                shutil.copy(cast.parent / name, folder / name)
    assert (folder / (session.theirs.name + ".allowed_signers")).exists()
    trust = tmp_path / "allowed_signers"
    trust.write_text(session.signers.read_text() + session.trust.read_text())

    def verify_all() -> subprocess.CompletedProcess[str]:
        """As a person types it: the shell expands the glob."""
        toolkit = shlex.join(TOOLKIT)
        signers, files = shlex.quote(str(trust)), shlex.quote(str(folder))
        line = f"{toolkit} verify --allowed-signers {signers} {files}/*"
        person = session.technician
        return subprocess.run(
            ["sh", "-c", line], env=person.env(), cwd=person.root,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    done = verify_all()
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.count("SEALED ") == 2 and done.stderr == "", done.stderr
    # Another file is still named, and is still exit 2; a .sig alone too.
    (folder / "notes.txt").write_text("not a transcript\n")
    (folder / "lost.cast.sig").write_text("-----BEGIN SSH SIGNATURE-----\n")
    done = verify_all()
    assert done.returncode == 2, done.stderr
    named = [line.split(":", 1)[0] for line in done.stderr.splitlines() if "This is not" in line]
    assert sorted(Path(n).name for n in named) == ["lost.cast.sig", "notes.txt"], done.stderr
