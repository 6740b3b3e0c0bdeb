"""Regenerate the committed sample transcripts under tests/assets.

Run from the repository root::

    .venv/bin/python -m tests.assets.make_assets [--format 1|2] [DIRECTORY]

Format 2 (the default) goes to tests/assets/format2/. The format 1 files in
tests/assets/ itself were made before format 2 existed and are kept as they
are: a verifier must go on reading old transcripts (``--format 1`` remakes
them, with new keys, only if they must change).

Every run makes fresh Ed25519 keys in memory, records one small transcript,
derives the deliberately broken variants from it and then forgets the keys:
only public keys (in the allowed_signers files) are written, never a private
key. tests/threats/test_committed_assets.py says which verdict each file must
get; run it after regenerating.

The sample has 11 lines and three checkpoints (tests.helpers.record_sample
with one round of events and a checkpoint every three events)::

    1 header   2 e consent   3 m marker   4 r resize   5 c checkpoint 1
    6 i input  7 o output    8 e operation             9 c checkpoint 2
    10 e session_end                                   11 c checkpoint 3

``rechain`` is the attacker's tool, shared with tests/threats: it recomputes
every checkpoint (offset, event count, SHA-256 and signature) and the final
signature over edited lines, with any key, any namespace and any hash
algorithm, exactly as the recorder would have written them.

Format 2 adds the downgrades: a seal or checkpoints signed with the SHA-512
of format 1 (good signatures, by the right key, over the same bytes), and a
format 1 file sealed with format 2's SHA-256. Each is TAMPERED.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.helpers import (
    EMAIL,
    allowed_signers_line,
    new_signer,
    record_sample,
    write_allowed_signers,
)
from toolkit.identity import sshsig
from toolkit.identity.signer import Signer
from toolkit.transcript.models import (
    CHECKPOINT,
    FORMAT_VERSION,
    NAMESPACE_CHECKPOINT,
    NAMESPACE_SEAL,
    Checkpoint,
    Event,
    Header,
)

HERE = Path(__file__).resolve().parent
CHECKPOINT_MARK = b', "c", "'
# A well-formed output event that no recorder wrote.
INJECTED_LINE = b'[0.001000, "o", "injected\\r\\n"]\n'


#: Where each format's assets are.
DIRECTORIES = {1: HERE, 2: HERE / "format2"}


def record_small(path: Path, signer: Signer, format: int = FORMAT_VERSION) -> Path:
    """The 11-line, three-checkpoint sample described above, sealed."""
    return record_sample(path, signer, events=1, checkpoint_events=3, format=format)


def split_lines(data: bytes) -> list[bytes]:
    """The file's lines, each with its newline (a last line may lack one)."""
    return data.splitlines(keepends=True)


def rechain(
    data: bytes,
    signer: Signer,
    *,
    checkpoint_namespace: str = NAMESPACE_CHECKPOINT,
    seal_namespace: str = NAMESPACE_SEAL,
    checkpoint_signers: Mapping[int, Signer] | None = None,
    seal_signer: Signer | None = None,
    checkpoint_hash: str | None = None,
    seal_hash: str | None = None,
) -> tuple[bytes, str]:
    """Re-sign a transcript's checkpoints and seal; return the file and its armoured .sig.

    Checkpoint lines keep their time; their numbers, hash and signature are
    recomputed for the bytes before them. ``checkpoint_signers`` maps a
    checkpoint number to the key that signs it instead of ``signer``. With the
    original key and namespaces the output is byte-identical to the recorder's
    (Ed25519 signatures are deterministic).
    """
    lines = split_lines(data)
    header = Header.from_line(lines[0])
    session = header.session_id
    checkpoint_hash = checkpoint_hash or header.hash_algorithm
    seal_hash = seal_hash or header.hash_algorithm
    out = bytearray(lines[0])
    seq = 0
    for index, line in enumerate(lines[1:]):
        if CHECKPOINT_MARK not in line:
            out += line
            continue
        event = Event.from_line(line)
        assert event.code == CHECKPOINT, "a checkpoint mark outside a checkpoint line"
        seq += 1
        digest = hashlib.sha256(out).hexdigest()
        key = (checkpoint_signers or {}).get(seq, signer)
        unsigned = Checkpoint(seq=seq, offset=len(out), events=index, sha256=digest, sig="")
        time_field = line[1 : line.index(CHECKPOINT_MARK)].decode()
        statement = unsigned.statement(session, time_field)
        sig = sshsig.sign(key, statement, checkpoint_namespace, checkpoint_hash)
        checkpoint = Checkpoint(
            seq=seq,
            offset=len(out),
            events=index,
            sha256=digest,
            sig=base64.b64encode(sig.to_bytes()).decode("ascii"),
        )
        time_part = line[: line.index(CHECKPOINT_MARK)]
        out += time_part + b', "c", ' + json.dumps(checkpoint.to_data()).encode() + b"]\n"
    whole = sshsig.HASH_ALGORITHMS[seal_hash](out).digest()
    seal = sshsig.sign_digest(seal_signer or signer, whole, seal_namespace, seal_hash).armor()
    return bytes(out), seal


def swap_lines(data: bytes, a: int, b: int) -> bytes:
    """Swap two lines, numbered from 1 as the verifier numbers them."""
    lines = split_lines(data)
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    return b"".join(lines)


def delete_line(data: bytes, number: int) -> bytes:
    lines = split_lines(data)
    del lines[number - 1]
    return b"".join(lines)


def insert_line(data: bytes, before: int, line: bytes) -> bytes:
    """Insert ``line`` so that it becomes line number ``before``."""
    lines = split_lines(data)
    lines.insert(before - 1, line)
    return b"".join(lines)


def line_start(data: bytes, number: int) -> int:
    return sum(len(line) for line in split_lines(data)[: number - 1])


def _write(directory: Path, name: str, data: bytes, sig: bytes | str | None) -> list[Path]:
    path = directory / name
    path.write_bytes(data)
    written = [path]
    if sig is not None:
        sig_path = directory / f"{name}.sig"
        sig_path.write_bytes(sig.encode("ascii") if isinstance(sig, str) else sig)
        written.append(sig_path)
    return written


def build(directory: Path, format: int = FORMAT_VERSION) -> list[Path]:
    """Write every asset of ``format`` into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    victim, stranger, attacker = new_signer(), new_signer(), new_signer()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        sealed_path = record_small(work / "sealed.cast", victim, format)
        other_path = record_small(work / "other.cast", victim, format)
        forged_path = record_small(work / "forged.cast", attacker, format)
        old_path = record_small(work / "old.cast", victim, 1)
        sealed, seal = sealed_path.read_bytes(), Path(f"{sealed_path}.sig").read_bytes()
        other_seal = Path(f"{other_path}.sig").read_bytes()
        forged, forged_seal = forged_path.read_bytes(), Path(f"{forged_path}.sig").read_bytes()
        old = old_path.read_bytes()

    written = [
        write_allowed_signers(directory / "allowed_signers", victim),
        write_allowed_signers(directory / "untrusted_signer_allowed_signers", stranger),
    ]
    omitted = directory / "namespaces_omitted_allowed_signers"
    omitted.write_text(allowed_signers_line(victim, EMAIL, namespaces=("git", "file")))
    written.append(omitted)

    cut = line_start(sealed, 7) + 10
    flipped = bytearray(sealed)
    flipped[line_start(sealed, 7)] ^= 0x01  # '[' -> 'Z': line 7 is no longer JSON
    swapped, swapped_seal = rechain(
        sealed, victim, checkpoint_namespace=NAMESPACE_SEAL, seal_namespace=NAMESPACE_CHECKPOINT
    )
    resigned, resigned_seal = rechain(sealed, victim, checkpoint_signers={2: attacker})
    downgrades: list[tuple[str, bytes, bytes | str | None]] = []
    if format == 2:
        downgrades = [
            ("downgraded_seal.cast", *rechain(sealed, victim, seal_hash="sha512")),
            ("downgraded_checkpoints.cast", *rechain(sealed, victim, checkpoint_hash="sha512")),
            ("format1_sealed_with_sha256.cast", *rechain(old, victim, seal_hash="sha256")),
        ]
    for name, data, sig in [
        ("sealed.cast", sealed, seal),
        ("missing_sig.cast", sealed, None),
        ("truncated_mid_line.cast", sealed[:cut], seal),
        ("flipped_byte.cast", bytes(flipped), seal),
        ("swapped_lines.cast", swap_lines(sealed, 6, 7), seal),
        ("deleted_line.cast", delete_line(sealed, 3), seal),
        ("inserted_line.cast", insert_line(sealed, 8, INJECTED_LINE), seal),
        ("foreign_sig.cast", sealed, other_seal),
        ("namespaces_swapped.cast", swapped, swapped_seal),
        ("resigned_checkpoint.cast", resigned, resigned_seal),
        ("forged_header.cast", forged, forged_seal),
        *downgrades,
    ]:
        written += _write(directory, name, data, sig)
    # Byte-exact files: never let git convert line ends.
    attributes = directory / ".gitattributes"
    attributes.write_text("* -text\n")
    written.append(attributes)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    format = FORMAT_VERSION
    if args[:1] == ["--format"]:
        format, args = int(args[1]), args[2:]
    directory = Path(args[0]) if args else DIRECTORIES[format]
    for path in build(directory, format):
        print(f"{path.stat().st_size:6d}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
