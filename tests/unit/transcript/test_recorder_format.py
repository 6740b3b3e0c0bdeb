"""The recorder's bytes, pinned: speed-ups must not change a single one.

A fixed key (Ed25519 signs deterministically), a fixed header and a fake
clock make the whole file and its .sig reproducible. The session goes
through every path the recorder has: ASCII and non-ASCII reads, a character
split across reads, invalid UTF-8, bytearray and memoryview input, reads
longer than one line holds, empty reads, redaction, events with nested and
non-ASCII fields, markers, resizes, checkpoints by count and by time, and
the seal. The digests were taken from the recorder as it was before it had
a fast path for short ASCII reads and a shared JSON encoder, and (for the
bulk output with every escaped character) before orjson quoted bulk output.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers import FakeClock
from toolkit.identity.keys import blob_of, fingerprint
from toolkit.identity.signer import KeySigner
from toolkit.secrets import Secret
from toolkit.transcript.models import Header, Technician
from toolkit.transcript.recorder import Recorder, _orjson_dumps

#: Format 1's bytes (SHA-512 seal), pinned before format 2 existed.
FILE_SHA256 = "567c0a733a34558d35302421c42fe67ae71b30f56635dbf0bb48ba2af97e9637"
SIG_SHA256 = "146d5010f322c7865f9b83529c720b6a7481f1d095c02f4bc3d5792a0bddf73f"
#: Format 2's (SHA-256 throughout).
FILE2_SHA256 = "dfd52621e319a8cf16365a5c3b726344c4cfc1fec00601f7144f0df4753b47e8"
SIG2_SHA256 = "43604468f5684764bd33eacbc2042824fad2bea630952dc1fbaecdf491f34e99"


def record(path: Path, recorder: type[Recorder] = Recorder, format: int = 1) -> Path:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    signer = KeySigner(key)
    fp = fingerprint(blob_of(key.public_key()))
    header = Header(
        technician=Technician("Alice Tech", "alice@example.com", fp),
        ticket="T-1",
        timestamp=1_790_000_000,
        session_id="6f1c3c5e-2a8b-4d47-9a0e-0d6f9f1f2a3b",
        customer_host="pc-42",
        scope=("diagnostics", "fixes"),
        tool_version="0.1.0",
        format=format,
    )
    clock = FakeClock()
    rec = recorder(path, header, signer, clock=clock, checkpoint_events=7)
    rec.event("consent", method="spake2", result="ok", scope=["diagnostics"])
    rec.redact(Secret("417-093-552"))
    snowman = "\u2603".encode()
    for i in range(30):
        clock.now += 0.013 * (i % 5)
        rec.input(b"l")
        rec.input(b"s\r")
        rec.output(b"total 42 files\r\n")
        rec.output(f"caf\xe9 {i} \x1b[1mbold\x1b[0m\r\n".encode())
        rec.output(b"x" + snowman[:2])
        rec.output(snowman[2:] + b"y")
        rec.output(b"")
        rec.output(bytearray(b"from a bytearray\r\n"))  # type: ignore[arg-type]
        rec.output(memoryview(b"from a memoryview\r\n"))  # type: ignore[arg-type]
        rec.output(b"\xff\xfe not UTF-8 \xc3")
        rec.output(b"code 417-093-552\r\n")
        rec.event(
            "operation",
            op="run",
            argv=["ls", "-l", "caf\xe9"],
            exitStatus=0,
            index=i,
            detail={"nested": [1, 2.5, None, True, {"k": "v\u2603"}], "why": 'a "quote"'},
        )
        if i % 10 == 3:
            rec.marker(f"step {i} 417-093-552")
            rec.resize(100 + i, 30)
            clock.now += 6.0  # a checkpoint by time
            rec.tick()
    rec.output(b"a" * 70_000)  # ASCII, longer than one line holds
    rec.output(("\u2603" * 30_000).encode())
    # Bulk output (quoted by orjson) with every character JSON escapes, and some it does not.
    every = "".join(map(chr, range(0x20))) + '"\\ \x7f \u2028 caf\xe9 \u2603 '
    rec.output((every * 100).encode())
    rec.output(b"\r\n" * 4000)
    clock.now += 1.5
    rec.close("completed")
    return path


@pytest.mark.parametrize(
    ("format", "file_sha256", "sig_sha256"),
    [(1, FILE_SHA256, SIG_SHA256), (2, FILE2_SHA256, SIG2_SHA256)],
)
def test_the_file_and_its_sig_are_byte_for_byte_what_they_were(
    tmp_path: Path, format: int, file_sha256: str, sig_sha256: str
) -> None:
    path = record(tmp_path / "s.cast", format=format)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == file_sha256
    assert hashlib.sha256(Path(f"{path}.sig").read_bytes()).hexdigest() == sig_sha256


def test_without_orjson_json_writes_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken install without orjson still records, byte for byte the same (slower)."""
    monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson raises ImportError
    _orjson_dumps.cache_clear()
    try:
        assert _orjson_dumps() is None
        path = record(tmp_path / "s.cast")
    finally:
        _orjson_dumps.cache_clear()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == FILE_SHA256
    assert hashlib.sha256(Path(f"{path}.sig").read_bytes()).hexdigest() == SIG_SHA256
