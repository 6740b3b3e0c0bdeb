from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers import FakeClock, new_signer, record_sample, write_allowed_signers
from toolkit.errors import TranscriptWriteError
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.secrets import Secret
from toolkit.transcript.models import Checkpoint, Header
from toolkit.transcript.recorder import REDACTED, Recorder, RecorderClosed, new_header
from toolkit.transcript.verify import Verdict, examine, read_events


def _recorder(tmp_path: Path, **options: object) -> tuple[Recorder, AllowedSigners]:
    signer = new_signer()
    trust = AllowedSigners.from_file(write_allowed_signers(tmp_path / "as", signer))
    header = new_header("Alice", "alice@example.com", signer, "T-9")
    return Recorder.create(tmp_path / "s.cast", header, signer, **options), trust


def _checkpoints(path: Path) -> list[Checkpoint]:
    return [Checkpoint.from_data(e.data) for e in read_events(path) if e.code == "c"]


def test_checkpoint_every_1000_events_and_at_the_end(tmp_path: Path) -> None:
    clock = FakeClock()
    rec, trust = _recorder(tmp_path, clock=clock)
    for _ in range(2500):
        rec.output(b"x")
    rec.close("completed")
    cps = _checkpoints(rec.path)
    assert [c.events for c in cps] == [1000, 2001, 2503]  # 1,000 events each, then the seal
    assert examine(rec.path, trust).verdict is Verdict.SEALED


def test_checkpoint_after_5_seconds_of_session_time(tmp_path: Path) -> None:
    clock = FakeClock()
    rec, _ = _recorder(tmp_path, clock=clock)
    rec.output(b"a")
    clock.now += 4.9
    rec.output(b"b")
    assert _checkpoints(rec.path) == []
    clock.now += 0.2
    rec.output(b"c")
    assert len(_checkpoints(rec.path)) == 1
    # Idle: tick() checkpoints pending events once their interval has passed.
    rec.output(b"d")
    rec.tick()
    assert len(_checkpoints(rec.path)) == 1
    clock.now += 5
    rec.tick()
    rec.tick()  # nothing new: no empty checkpoint
    assert len(_checkpoints(rec.path)) == 2
    rec.close("completed")


def test_every_checkpoint_is_on_disk_before_the_next_event(tmp_path: Path) -> None:
    rec, trust = _recorder(tmp_path, checkpoint_events=3)
    for i in range(7):
        rec.output(f"{i}".encode())
    on_disk = rec.path.read_bytes()
    assert on_disk.count(b'"c"') == 2
    report = examine(rec.path, trust)
    assert report.verdict is Verdict.UNSEALED and report.checkpoints == 2
    rec.close("completed")


def test_secrets_cannot_be_recorded(tmp_path: Path) -> None:
    rec, trust = _recorder(tmp_path)
    code = Secret("417093552")
    with pytest.raises(TypeError):
        rec.event("consent", result=code)
    with pytest.raises(TypeError):
        rec.output(code)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rec.marker(code)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rec.event("op", key=ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(TypeError):
        rec.event("op", blob=b"raw bytes")
    for name in ["code", "consent_code", "passphrase", "password", "private_key", "token"]:
        with pytest.raises(ValueError, match="secret"):
            rec.event("consent", **{name: "x"})
    with pytest.raises(ValueError, match="secret"):
        rec.event("consent", detail={"password": "x"})
    with pytest.raises(ValueError):
        rec.event("Bad Type")
    with pytest.raises(TypeError):
        f"{code}"
    with pytest.raises(TypeError):
        str(code)
    assert "417" not in repr(code)
    rec.close("completed")
    assert b"417093552" not in rec.path.read_bytes()
    assert examine(rec.path, trust).verdict is Verdict.SEALED


def test_redacted_values_never_reach_the_file(tmp_path: Path) -> None:
    rec, _ = _recorder(tmp_path)
    rec.redact(Secret("417-093-552"))
    rec.output(b"your code is 417-093-552\r\n")
    rec.event("note", text="417-093-552")
    rec.marker("code 417-093-552")
    rec.close("completed")
    data = rec.path.read_text()
    assert "417-093-552" not in data
    assert data.count(REDACTED) == 3


def test_output_is_decoded_across_chunk_boundaries_and_split(tmp_path: Path) -> None:
    rec, trust = _recorder(tmp_path)
    snowman = "\u2603".encode()
    rec.output(b"a" + snowman[:1])
    rec.output(snowman[1:] + b"b")
    rec.output(b"\xff")  # not UTF-8: replaced, not dropped silently
    rec.output(b"y" * 200_000)
    rec.close("completed")
    outputs = [e.data for e in read_events(rec.path) if e.code == "o"]
    assert outputs[:3] == ["a", "\u2603b", "\ufffd"]
    assert "".join(outputs[3:]) == "y" * 200_000 and len(outputs) == 7  # 64 KiB per line
    assert examine(rec.path, trust).verdict is Verdict.SEALED


def test_closed_recorder_refuses_more(tmp_path: Path) -> None:
    rec, _ = _recorder(tmp_path)
    sig = rec.close("completed")
    assert sig.name == "s.cast.sig" and sig.read_text().startswith("-----BEGIN SSH SIGNATURE")
    with pytest.raises(RecorderClosed):
        rec.output(b"late")
    with pytest.raises(RecorderClosed):
        rec.close("again")


def test_transcript_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = record_sample(tmp_path / "s.cast", new_signer())
    assert path.stat().st_mode & 0o777 == 0o600
    before = path.read_bytes()
    signer = new_signer()
    with pytest.raises(TranscriptWriteError, match="File exists") as caught:
        Recorder.create(path, new_header("A", "a@example.com", signer, "T"), signer)
    assert isinstance(caught.value.__cause__, FileExistsError)
    assert path.read_bytes() == before


def test_header_must_name_the_signing_key(tmp_path: Path) -> None:
    header = new_header("A", "a@example.com", new_signer(), "T")
    with pytest.raises(ValueError, match="fingerprint"):
        Recorder.create(tmp_path / "x.cast", header, new_signer())


def test_header_round_trip_and_required_fields(tmp_path: Path) -> None:
    signer = new_signer()
    header = new_header(
        "Alice", "alice@example.com", signer, "T-1", scope=["diagnostics", "shell"],
        agent_host_key="SHA256:host", customer_host="pc-42", width=120, height=40,
    )  # fmt: skip
    raw = json.loads(header.to_line())
    assert isinstance(raw["timestamp"], int) and raw["version"] == 2
    meta = raw["toolkit"]
    assert set(meta) >= {
        "format", "session", "ticket", "technician", "agent_host_key", "customer_host",
        "scope", "tool_version", "namespaces",
    }  # fmt: skip
    assert Header.from_line(header.to_line()) == header


def test_close_on_exception_records_why(tmp_path: Path) -> None:
    rec, trust = _recorder(tmp_path)
    with pytest.raises(RuntimeError), rec:
        raise RuntimeError("boom")
    report = examine(rec.path, trust)
    assert report.verdict is Verdict.SEALED and report.end_reason == "error: RuntimeError"


CRASHER = """
import sys, time
from pathlib import Path
from tests.helpers import new_signer
from toolkit.transcript.recorder import Recorder, new_header
signer = new_signer()
Path(sys.argv[2]).write_text(
    "alice@example.com " + __import__("toolkit.identity.keys", fromlist=["x"]).public_line(
        signer.public_blob) + "\\n")
rec = Recorder.create(Path(sys.argv[1]), new_header("A", "alice@example.com", signer, "T"),
                      signer, checkpoint_events=50)
for i in range(1000):
    rec.output(b"line %d\\r\\n" % i)
print("ready", flush=True)
time.sleep(60)
"""


def test_kill_9_leaves_a_verifiable_prefix(tmp_path: Path) -> None:
    path, signers = tmp_path / "crash.cast", tmp_path / "allowed_signers"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(path), str(signers)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[3],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    report = examine(path, AllowedSigners.from_file(signers))
    assert report.verdict is Verdict.UNSEALED
    assert report.checkpoints == 20  # 1,000 events, a checkpoint every 50: nothing lost
    assert report.failure is not None and "missing" in report.failure.reason


def test_overlong_garbage_line_is_reported_without_loading_it(tmp_path: Path) -> None:
    signer = new_signer()
    trust = AllowedSigners.from_file(write_allowed_signers(tmp_path / "as", signer))
    path = record_sample(tmp_path / "s.cast", signer, events=3)
    with path.open("ab") as f:
        f.write(b"x" * (17 << 20))  # no newline: longer than any line we write
    report = examine(path, trust)
    assert report.verdict is Verdict.TAMPERED  # appended after the seal
    assert report.notes and "longer than any line" in report.notes[0]
    assert report.size == path.stat().st_size


def test_customer_copy_is_signed_by_the_agent_key_and_names_it(tmp_path: Path) -> None:
    technician, agent = new_signer(), new_signer()
    header = new_header(
        "Alice", "alice@example.com", agent, "T-1",
        technician_fingerprint="SHA256:tech", signer_principal=("toolkit agent", "agent@pc-42"),
    )  # fmt: skip
    assert header.technician.fingerprint == "SHA256:tech"
    assert Header.from_line(header.to_line()) == header
    rec = Recorder.create(tmp_path / "c.cast", header, agent)
    rec.close("completed")
    as_agent = write_allowed_signers(tmp_path / "as", agent, email="agent@pc-42")
    assert examine(rec.path, AllowedSigners.from_file(as_agent)).verdict is Verdict.SEALED
    as_tech = write_allowed_signers(tmp_path / "as2", technician)
    assert examine(rec.path, AllowedSigners.from_file(as_tech)).verdict is Verdict.UNTRUSTED


def test_header_with_an_infinite_timestamp_is_not_a_transcript() -> None:
    from toolkit.errors import TranscriptFormatError

    signer = new_signer()
    line = new_header("A", "a@example.com", signer, "T").to_line()
    broken = line.replace(b'"timestamp":', b'"timestamp":1E999,"x":', 1)
    with pytest.raises(TranscriptFormatError, match="incomplete"):
        Header.from_line(broken)


@pytest.mark.parametrize(
    "text",
    [
        "\ud800" * 2000,  # a lone surrogate: orjson refuses it, json writes it as "?"
        "".join(map(chr, range(0x20))) * 64 + '"\\\x7f\u2028caf\xe9\u2603',
    ],
)
def test_bulk_text_is_quoted_exactly_as_json_would(text: str) -> None:
    from toolkit.transcript.recorder import _quote_bulk

    assert len(text) >= 1024  # the orjson path
    assert _quote_bulk(text) == json.encoder.encode_basestring(text).encode("utf-8", "replace")


def test_the_kernel_starts_writing_every_4_mib_so_a_checkpoint_waits_less(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fsync after each checkpoint then finds the bytes before it mostly written:
    # on the loop, it had waited for a whole checkpoint's worth (64 MB of bulk output).
    from toolkit.transcript import recorder

    started: list[tuple[int, int]] = []
    monkeypatch.setattr(
        recorder, "_writeback", lambda: lambda fd, offset, length: started.append((offset, length))
    )
    rec, trust = _recorder(tmp_path)
    for _ in range(200):
        rec.output(b"y" * 60_000 + b"\r\n")
    rec.close("completed")
    size = rec.path.stat().st_size
    assert started and started[0][0] == 0
    assert all(o2 == o1 + n1 for (o1, n1), (o2, _) in itertools.pairwise(started))
    assert all(n >= 4 << 20 for _, n in started) and size - sum(n for _, n in started) < 4 << 20
    assert examine(rec.path, trust).verdict is Verdict.SEALED


def test_a_writeback_hint_that_fails_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.transcript import recorder

    def broken(fd: int, offset: int, length: int) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(recorder, "_writeback", lambda: broken)
    rec, trust = _recorder(tmp_path)
    for _ in range(100):
        rec.output(b"z" * 60_000)
    rec.close("completed")
    assert rec.failure is None and examine(rec.path, trust).verdict is Verdict.SEALED
