"""A transcript write that fails (a full disk) stops the recorder, and the file stays honest.

The short and failed writes here are the kernel's own: a child process records
under a file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past it
is cut short and the next one fails with EFBIG, as on a full disk), then lifts
the limit, as when space comes back, and tries to go on.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FakeClock, new_signer, write_allowed_signers
from toolkit.errors import ExitCode, TranscriptWriteError
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.transcript.recorder import Recorder, keep_checkpointing, new_header
from toolkit.transcript.verify import Verdict, examine

resource = pytest.importorskip("resource", reason="RLIMIT_FSIZE is POSIX only")

_CHILD = r"""
import json, resource, signal, sys
from pathlib import Path
from tests.helpers import FakeClock, new_signer, write_allowed_signers
from toolkit.errors import TranscriptWriteError
from toolkit.transcript.recorder import Recorder, new_header

out, limit, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
signer = new_signer()
write_allowed_signers(out / "as", signer)
failures = []
header = new_header("Alice", "alice@example.com", signer, "T-9")
told = {"on_failure": failures.append} if mode == "report" else {}
rec = Recorder.create(out / "s.cast", header, signer, **told)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
report = {"error": None}
try:
    for i in range(200_000):
        rec.output(b"line %d of the output\r\n" % i)
        if rec.closed:  # with on_failure: reported there, the write returned quietly
            report["error"] = rec.failure.diagnostics()
            break
except TranscriptWriteError as exc:
    report["error"] = exc.diagnostics()
    report["same_as_failure"] = exc is rec.failure
report["size_at_failure"] = (out / "s.cast").stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
for attempt in ("output", "event", "close"):
    try:
        if attempt == "output":
            rec.output(b"after the failure\r\n")
        elif attempt == "event":
            rec.event("note", text="after the failure")
        else:
            rec.close("completed")
        report[attempt] = "accepted"
    except TranscriptWriteError as exc:
        report[attempt] = "the same failure" if exc is rec.failure else exc.message
rec.abandon()
report["size_after"] = (out / "s.cast").stat().st_size
report["sig"] = (out / "s.cast.sig").exists()
report["on_failure_calls"] = len(failures)
report["closed"] = rec.closed
print(json.dumps(report))
"""


def _record_until_full(tmp_path: Path, limit: int, mode: str = "raise") -> dict[str, Any]:
    """``mode`` "raise": no on_failure; "report": the failure goes to on_failure."""
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path), str(limit), mode],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_a_full_disk_stops_the_recorder_and_leaves_a_verifiable_prefix(tmp_path: Path) -> None:
    report = _record_until_full(tmp_path, 150_000)
    path = tmp_path / "s.cast"
    assert report["error"] is not None, "the limit was never reached"
    assert report["error"].startswith(f"Cannot write the transcript {path}: File too large.")
    assert "up to checkpoint" in report["error"] and "toolkit verify" in report["error"]
    assert report["same_as_failure"] and report["closed"]
    # Space came back: still nothing more is written, and nothing is sealed.
    assert report["output"] == report["event"] == report["close"] == "the same failure"
    assert report["size_after"] == report["size_at_failure"] == 150_000
    assert not report["sig"]
    # The bytes written before the failure are not in the hashes: a checkpoint
    # written after them would make an honest transcript look TAMPERED.
    trust = AllowedSigners.from_file(tmp_path / "as")
    verdict = examine(path, trust)
    assert verdict.verdict is Verdict.UNSEALED
    assert verdict.checkpoints >= 2
    assert f"checkpoint {verdict.checkpoints} " in report["error"]
    assert 0 < verdict.valid_bytes < 150_000


def test_with_on_failure_the_failure_is_told_once_and_writes_return_quietly(
    tmp_path: Path,
) -> None:
    report = _record_until_full(tmp_path, 150_000, "report")
    path = tmp_path / "s.cast"
    assert report["error"] is not None, "the limit was never reached"
    assert report["error"].startswith(f"Cannot write the transcript {path}: File too large.")
    assert report["on_failure_calls"] == 1 and report["closed"]
    # Later writes are dropped without an exception for the caller to catch;
    # sealing still refuses, with the same failure.
    assert report["output"] == report["event"] == "accepted"
    assert report["close"] == "the same failure"
    assert report["size_after"] == report["size_at_failure"] == 150_000
    assert not report["sig"]
    trust = AllowedSigners.from_file(tmp_path / "as")
    assert examine(path, trust).verdict is Verdict.UNSEALED


def test_a_failure_before_any_checkpoint_says_nothing_can_be_verified(tmp_path: Path) -> None:
    report = _record_until_full(tmp_path, 2_000)  # the header fits, the first 64 KiB do not
    assert report["error"] is not None
    assert "It holds no checkpoint yet, so nothing in it can be verified." in report["error"]
    assert report["close"] == "the same failure"


def _recorder(tmp_path: Path, **options: Any) -> Recorder:
    signer = new_signer()
    write_allowed_signers(tmp_path / "as", signer)
    header = new_header("Alice", "alice@example.com", signer, "T-9")
    return Recorder.create(tmp_path / "s.cast", header, signer, **options)


def test_a_seal_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.output(b"hello\r\n")
    (tmp_path / "s.cast.sig").mkdir()  # where the seal should go: renaming onto it fails
    with pytest.raises(TranscriptWriteError) as caught:
        rec.close("completed")
    assert caught.value.message.startswith(f"Cannot write the seal {tmp_path / 's.cast.sig'}: ")
    assert "whole and checkpointed to its end, but unsealed" in caught.value.diagnostics()
    assert caught.value.exit_code is ExitCode.FAILED
    assert rec.closed and rec.failure is caught.value
    trust = AllowedSigners.from_file(tmp_path / "as")
    report = examine(rec.path, trust)
    assert report.verdict is Verdict.UNSEALED
    assert report.valid_bytes == report.size  # every byte checkpointed, only the seal missing


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_checkpointing_stops_quietly_once_the_recorder_failed(tmp_path: Path) -> None:
    clock = FakeClock()
    failures: list[TranscriptWriteError] = []
    rec = _recorder(tmp_path, clock=clock, on_failure=failures.append)
    rec.output(b"x")
    # Every write from here on fails with ENOSPC, the kernel's own full disk.
    rec._file = open("/dev/full", "wb", buffering=0)  # noqa: SIM115 (the recorder closes it)
    clock.now += 10  # past the time checkpoint: the next tick writes one

    async def run() -> None:
        await asyncio.wait_for(keep_checkpointing(rec, interval=0.01), 5)

    asyncio.run(run())  # it returns, and no exception escapes the ticker task
    assert rec.closed
    assert failures == [rec.failure]
    assert failures[0].message.endswith("No space left on device.")
