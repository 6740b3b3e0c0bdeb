"""Helpers shared by tests: keys made at test time, sample transcripts."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from toolkit.identity.keys import public_line
from toolkit.identity.signer import KeySigner, Signer
from toolkit.transcript.models import FORMAT_VERSION, NAMESPACES
from toolkit.transcript.recorder import Recorder, new_header

EMAIL = "alice@example.com"


def new_signer() -> KeySigner:
    return KeySigner(ed25519.Ed25519PrivateKey.generate())


def allowed_signers_line(
    signer: Signer, email: str = EMAIL, namespaces: tuple[str, ...] = NAMESPACES
) -> str:
    return f'{email} namespaces="{",".join(namespaces)}" {public_line(signer.public_blob)}\n'


def write_allowed_signers(path: Path, *signers: Signer, email: str = EMAIL) -> Path:
    path.write_text("".join(allowed_signers_line(s, email) for s in signers))
    return path


def write_issuers(path: Path, *signers: Signer, email: str = "owner@example.com") -> Path:
    """An agent's --accept-grants-from file: each signer trusted to issue grants."""
    path.write_text("".join(allowed_signers_line(s, email, ("toolkit-grant",)) for s in signers))
    return path


class FakeClock:
    """A monotonic clock that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record_sample(
    path: Path,
    signer: Signer,
    *,
    events: int = 12,
    email: str = EMAIL,
    checkpoint_events: int = 4,
    seal: bool = True,
    body: Callable[[Recorder], None] | None = None,
    clock: Callable[[], float] | None = None,
    format: int = FORMAT_VERSION,
) -> Path:
    """A transcript holding every event kind; several checkpoints by default."""
    header = new_header(
        "Alice Tech",
        email,
        signer,
        "T-1",
        scope=["diagnostics"],
        customer_host="pc-42",
        format=format,
    )
    options = {"clock": clock} if clock is not None else {}
    rec = Recorder.create(path, header, signer, checkpoint_events=checkpoint_events, **options)
    rec.event("consent", method="spake2", result="ok")
    rec.marker("diagnostics")
    rec.resize(100, 30)
    for i in range(events):
        if body is not None:
            body(rec)
        rec.input(b"uptime\r")
        rec.output(f"line {i}: caf\xe9 \u2603 \x1b[1mbold\x1b[0m\r\n".encode())
        rec.event("operation", op="run", argv=["uptime"], exit_status=0, index=i)
    if seal:
        rec.close("completed")
    else:
        rec.abandon()
    return path


def tool(name: str) -> str | None:
    return shutil.which(name)


def run(*argv: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(a) for a in argv], input=stdin, capture_output=True, check=False, timeout=60
    )
