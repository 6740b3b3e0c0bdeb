"""Issue 15, first use: `toolkit keys init` asks, ticket credentials anywhere, tickets read well.

Driven as a person would: the CLI in process for output, as a subprocess for
exit codes, in tmux for prompts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import new_signer, record_sample
from toolkit.cli import run as toolkit
from toolkit.tickets.local import LocalTickets
from toolkit.tickets.outbox import Outbox


def _toolkit(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """toolkit as its own process, without a terminal, in this test's dirs."""
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


# -- tickets list / show ------------------------------------------------------------------


def _attached_session(tmp_path: Path, ticket: str, name: str = "s") -> Path:
    """A sealed sample session attached to local ``ticket`` the way connect does it."""
    signer = new_signer()
    cast = record_sample(tmp_path / f"{name}.cast", signer)
    entry = Outbox().enqueue("local", ticket, cast, signer, None)
    assert Outbox().deliver(entry, LocalTickets()) is not None
    return cast


def test_list_has_a_header_and_each_tickets_subject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert toolkit(["tickets", "new", "--subject", "Printer jams on tray 2"]) == 0
    made = capsys.readouterr().out.strip()
    _attached_session(tmp_path, made)
    _attached_session(tmp_path, "T-9", "other")  # a ticket named by connect --ticket: no subject
    assert toolkit(["tickets", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TICKET", "SUBJECT", "FILES", "LAST", "ATTACHED"]
    assert lines[1].startswith(made) and "Printer jams on tray 2" in lines[1]
    assert lines[1].split()[-2] == "4"  # transcript, seal, manifest and its signature
    assert lines[2].split()[:4] == ["T-9", "-", "4", lines[2].split()[3]]
    # The columns line up under the header.
    assert lines[1].index("Printer") == lines[0].index("SUBJECT")
    assert toolkit(["tickets", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["ticket"], t["subject"], t["attachments"]) for t in listed] == [
        (made, "Printer jams on tray 2", 4),
        ("T-9", None, 4),
    ]
    assert all(t["last_attached"] for t in listed)


def test_list_with_no_tickets_says_so_without_a_header() -> None:
    done = _toolkit("tickets", "list")
    assert done.returncode == 0 and done.stdout == "No tickets yet.\n"


def test_show_prints_the_stored_summary_once_with_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cast = _attached_session(tmp_path, "T-7")
    done = _toolkit("tickets", "show", "T-7")
    assert done.returncode == 0, done.stderr
    shown = done.stdout
    stored = LocalTickets().ticket("T-7").attachments[0].comment
    # The whole summary, once: not its first line once per attached file.
    assert shown.count("toolkit session transcript") == 1
    for line in stored.splitlines():
        assert line.strip() in shown
    assert "Verified right before upload: SEALED" in shown
    assert "attached " in shown and ", 4 files:" in shown
    for name in (cast.name, cast.name + ".sig", "s.SHA256SUMS", "s.SHA256SUMS.sig"):
        assert f"  {name} " in shown
    # A second session on the same ticket: a second group with its own summary.
    _attached_session(tmp_path, "T-7", "second")
    shown = _toolkit("tickets", "show", "T-7").stdout
    assert shown.count("toolkit session transcript") == 2
    assert shown.count(", 4 files:") == 2


def test_show_makes_a_hostile_summary_printable(tmp_path: Path) -> None:
    src = tmp_path / "x.cast"
    src.write_bytes(b"data")
    LocalTickets().attach("T-3", [src], "line one\x1b]0;pwned\x07\nline two")
    shown = _toolkit("tickets", "show", "T-3").stdout
    assert "\x1b" not in shown and "\x07" not in shown
    assert "line one\\x1b]0;pwned\\x07" in shown and "    line two" in shown
