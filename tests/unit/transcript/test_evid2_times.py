"""Times in a transcript are never early (issue 15, evid2).

The header's timestamp is whole seconds, made before the file is (the
technician's copy: before the agent's hello). Event times count from that
timestamp, so ``timestamp + t`` is the event's wall-clock time, and
``toolkit show`` never shows a time earlier than one an event records (an
approval's ``at``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import new_signer, write_allowed_signers
from toolkit.transcript.recorder import Recorder, new_header
from toolkit.transcript.verify import read_events

#: As the approval's ``at`` is made (toolkit.agent.operations): cut to the second.
_AT = "%Y-%m-%dT%H:%M:%SZ"


def _record(path: Path, *, made_before: float) -> tuple[Path, float]:
    """A transcript whose header was made ``made_before`` seconds before its file; the
    wall-clock time of its approval."""
    signer = new_signer()
    header = new_header("Alice Tech", "alice@example.com", signer, "T-1", scope=["fixes"])
    time.sleep(made_before)  # the hello's round trip, and more
    rec = Recorder.create(path, header, signer)
    rec.event("consent", method="spake2", result="approved")
    now = time.time()
    at = datetime.fromtimestamp(now, UTC).strftime(_AT)
    rec.event("approval", answer="approved", by="customer", at=at, procedure="flush-dns")
    rec.close("completed")
    write_allowed_signers(path.with_name("allowed_signers"), signer)
    return path, now


def test_an_events_time_is_its_wall_clock_time(tmp_path: Path) -> None:
    path, now = _record(tmp_path / "s.cast", made_before=1.2)
    events = read_events(path)
    header = path.read_bytes().split(b"\n", 1)[0]
    timestamp = int(header.split(b'"timestamp":', 1)[1].split(b",", 1)[0])
    approval = next(e for e in events if e.code == "e" and '"approval"' in e.data)
    assert abs(timestamp + approval.time - now) < 0.2, (timestamp, approval.time, now)


def test_show_never_shows_an_approval_earlier_than_its_at(tmp_path: Path) -> None:
    _, now = _record(tmp_path / "s.cast", made_before=1.2)
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "show", "--allowed-signers", "allowed_signers", "s.cast"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if " approval " in line)
    at = datetime.fromtimestamp(now, UTC)
    assert row.split()[0] == at.strftime("%H:%M:%S"), row
    assert f"at {at.strftime(_AT)}" in row, row
