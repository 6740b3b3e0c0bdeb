"""A transcript's seal is what stock OpenSSH makes and checks, byte for byte.

Format 2 seals with an SSHSIG whose hash is SHA-256: the same bytes as
``ssh-keygen -Y sign -O hashalg=sha256 -n toolkit-transcript`` of the file, for
the same Ed25519 key, through a key file and through ssh-agent. Format 1
(SHA-512, ssh-keygen's default) is kept for old transcripts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import EMAIL, run
from toolkit.identity.signer import Signer, agent_signer, key_file_signer
from toolkit.transcript.models import NAMESPACE_SEAL
from toolkit.transcript.recorder import Recorder, new_header


def _no_passphrase() -> str:
    raise AssertionError("no passphrase should be asked for")


def _record(path: Path, signer: Signer, format: int) -> Path:
    header = new_header("Alice Tech", EMAIL, signer, "T-1", format=format)
    rec = Recorder.create(path, header, signer, checkpoint_events=3)
    rec.event("consent", method="spake2", result="ok")
    for i in range(5):
        rec.output(f"line {i}: caf\xe9 \u2603\r\n".encode() * (i * 500 + 1))
        rec.event("operation", op="run", argv=["uptime"], exit_status=0)
    rec.close("completed")
    return path


def _keygen_seal(ssh_keygen: str, key: Path, cast: Path, hashalg: str) -> bytes:
    copy = cast.with_name("oracle.cast")
    copy.write_bytes(cast.read_bytes())
    sign: list[str | Path] = [ssh_keygen, "-q", "-Y", "sign", "-f", key, "-n", NAMESPACE_SEAL]
    subprocess.run([*sign, "-O", f"hashalg={hashalg}", copy], check=True)
    return copy.with_name("oracle.cast.sig").read_bytes()


@pytest.mark.parametrize(("format", "hashalg"), [(2, "sha256"), (1, "sha512")])
def test_the_seal_is_ssh_keygens_through_a_key_file(
    tmp_path: Path, ssh_keygen: str, keygen_key: Path, format: int, hashalg: str
) -> None:
    cast = _record(tmp_path / "t.cast", key_file_signer(keygen_key, _no_passphrase), format)
    seal = Path(f"{cast}.sig").read_bytes()
    assert seal == _keygen_seal(ssh_keygen, keygen_key, cast, hashalg)
    # ... and the supervisor's stock check takes it.
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"{EMAIL} {keygen_key.with_name('id_ed25519.pub').read_text()}")
    checked = run(
        ssh_keygen, "-Y", "verify", "-f", signers, "-I", EMAIL, "-n", NAMESPACE_SEAL,
        "-s", f"{cast}.sig", stdin=cast.read_bytes(),
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_the_seal_is_ssh_keygens_through_ssh_agent(
    tmp_path: Path, ssh_keygen: str, ssh_agent: str, keygen_key: Path
) -> None:
    subprocess.run(["ssh-add", "-q", keygen_key], check=True, capture_output=True)
    cast = _record(tmp_path / "t.cast", agent_signer(), 2)
    assert Path(f"{cast}.sig").read_bytes() == _keygen_seal(ssh_keygen, keygen_key, cast, "sha256")
