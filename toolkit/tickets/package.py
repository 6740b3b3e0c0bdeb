"""What goes onto a ticket for one sealed transcript, within the system's size limit.

Three forms, chosen by the largest file the ticket system takes:

``plain``
    ``NAME.cast`` and ``NAME.cast.sig``, as sealed.
``gzip``
    ``NAME.cast.gz`` (gzip, deterministic: no name, no time) instead of the
    .cast, when the .cast is over the limit and its compressed form is not.
``parts``
    ``NAME.cast.gz.001``, ``.002``, ... each at most the limit, when even the
    compressed form is over it.

In the last two, the signature stays the seal's own ``NAME.cast.sig`` over
the original bytes (so the decompressed file verifies with toolkit or
ssh-keygen unchanged). In every form, since more than one file is attached,
``NAME.SHA256SUMS`` lists the SHA-256 of the original .cast, its .sig and
every attached piece, signed on its own in
``NAME.SHA256SUMS.sig`` (SSHSIG, namespace ``toolkit-manifest``, the same
key). ``cat NAME.cast.gz* | gunzip > NAME.cast`` rebuilds the transcript;
:func:`reassemble` does that and checks everything on the way.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from toolkit.errors import SignatureError, TicketBackendError
from toolkit.identity import sshsig
from toolkit.identity.signer import Signer

MANIFEST_NAMESPACE = "toolkit-manifest"
MANIFEST_SUFFIX = ".SHA256SUMS"
PLAIN, GZIP, PARTS = "plain", "gzip", "parts"
#: Below this a limit is a misconfiguration, not a ticket system's rule.
MIN_LIMIT = 64 * 1024
_CHUNK = 1 << 20
_PART = re.compile(r"^(?P<base>.+\.cast\.gz)\.(?P<n>\d{3,})$")


@dataclass(frozen=True)
class Package:
    form: str
    files: tuple[Path, ...]  # what is attached, in order
    transcript: Path  # the original .cast (kept in the outbox, attached only when plain)
    signature: Path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _Hashing:
    """A file written and hashed as it goes, so that nothing reads it back for its SHA-256."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha256 = hashlib.sha256()
        self._f = path.open("wb")

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _gzip(src: Path, dest: Path) -> str:
    """``dest``: ``src`` gzipped (no name, no time); the SHA-256 of ``dest``."""
    out = _Hashing(dest)
    try:
        with (
            src.open("rb") as fin,
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz,
        ):
            shutil.copyfileobj(fin, gz, _CHUNK)
    finally:
        out.close()
    return out.sha256.hexdigest()


def _split(src: Path, limit: int) -> dict[Path, str]:
    """``src`` cut into ``NAME.001``, ``.002``... of at most ``limit`` bytes; each one's SHA-256."""
    parts: dict[Path, str] = {}
    with src.open("rb") as f:
        n = 0
        while True:
            piece = f.read(limit)
            if not piece:
                break
            n += 1
            part = src.with_name(f"{src.name}.{n:03d}")
            part.write_bytes(piece)
            parts[part] = hashlib.sha256(piece).hexdigest()
    src.unlink()
    return parts


def link_or_copy(src: Path, dest: Path) -> bool:
    """``dest`` as another name of ``src`` (same file system), else a copy; whether linked.

    A link writes nothing: the file is kept once on disk (the outbox and the
    local ticket store hold the sealed transcript this way). Across file
    systems, or where links are not allowed, the copy is fsynced.
    """
    dest.unlink(missing_ok=True)  # a leftover of an interrupted try
    try:
        os.link(src, dest)
        return True
    except OSError:
        shutil.copyfile(src, dest)
        with dest.open("rb") as f:
            os.fsync(f.fileno())
        return False


def manifest_name(cast: Path) -> str:
    return cast.name.removesuffix(".cast") + MANIFEST_SUFFIX


def prepare(
    cast: Path, sig: Path, limit: int | None, signer: Signer, *, cast_sha256: str | None = None
) -> Package:
    """Make the files to attach, next to ``cast`` (in the outbox entry's folder).

    ``cast_sha256`` is the transcript's SHA-256 when the caller knows it (the
    recorder kept it as it wrote): then only a transcript too large for the
    system is read here, to compress it. The outbox checks the manifest
    against the transcript before anything leaves it.
    """
    if limit is not None and limit < MIN_LIMIT:
        raise TicketBackendError(
            f"An attachment limit of {limit} bytes is too small to attach a transcript.",
            hint=f"Set max_attachment_bytes to at least {MIN_LIMIT} in tickets.toml.",
        )
    size = cast.stat().st_size
    pieces: dict[Path, str] = {}
    form = PLAIN
    if limit is not None and size > limit:
        gz = cast.with_name(cast.name + ".gz")
        digest = _gzip(cast, gz)
        if gz.stat().st_size <= limit:
            form, pieces = GZIP, {gz: digest}
        else:
            form, pieces = PARTS, _split(gz, limit)
    sums = {cast: cast_sha256 or sha256_file(cast), sig: sha256_file(sig), **pieces}
    manifest = cast.with_name(manifest_name(cast))
    data = "".join(f"{digest}  {p.name}\n" for p, digest in sums.items()).encode()
    manifest.write_bytes(data)
    signed = manifest.with_name(manifest.name + ".sig")
    signed.write_text(sshsig.sign(signer, data, MANIFEST_NAMESPACE, "sha256").armor())
    carried = list(pieces) or [cast]  # plain: the .cast itself goes up
    return Package(form, (*carried, sig, manifest, signed), cast, sig)


def read_manifest(path: Path) -> dict[str, str]:
    """name -> SHA-256 from a SHA256SUMS file (sha256sum's format)."""
    found: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or "/" in name or not name:
            raise TicketBackendError(f"{path.name}, line {n}: not a SHA256SUMS line.")
        found[name.lstrip("*")] = digest
    return found


def reassemble(folder: Path) -> list[Path]:
    """Rebuild every compressed or split transcript in ``folder``; the .cast files made.

    Each manifest's own signature must verify and be by the key that sealed
    the transcript, and every file it lists must match it; anything else
    raises TicketBackendError.
    """
    made: list[Path] = []
    for manifest in sorted(folder.glob("*" + MANIFEST_SUFFIX)):
        sums = read_manifest(manifest)
        casts = [name for name in sums if name.endswith(".cast")]
        if len(casts) != 1:
            raise TicketBackendError(f"{manifest.name} does not name exactly one transcript.")
        cast = folder / casts[0]
        sig = folder / (cast.name + ".sig")
        try:
            data = manifest.read_bytes()
            signed = sshsig.SSHSig.from_bytes(
                sshsig.dearmor((folder / (manifest.name + ".sig")).read_bytes())
            )
            key = sshsig.verify(signed, data, MANIFEST_NAMESPACE)
            seal = sshsig.SSHSig.from_bytes(sshsig.dearmor(sig.read_bytes()))
        except (OSError, SignatureError) as exc:
            reason = exc.message if isinstance(exc, SignatureError) else str(exc)
            raise TicketBackendError(
                f"{manifest.name}: its signature does not verify ({reason}); "
                "the attachments may have been changed on the ticket."
            ) from None
        if key != seal.public_key:
            raise TicketBackendError(
                f"{manifest.name} is signed by another key than {sig.name}: "
                "the attachments may have been replaced on the ticket."
            )
        pieces = sorted(name for name in sums if _PART.match(name) or name.endswith(".cast.gz"))
        for name in [*pieces, sig.name] if pieces else [cast.name, sig.name]:
            path = folder / name
            if not path.is_file() or sha256_file(path) != sums[name]:
                raise TicketBackendError(f"{name} is missing or does not match {manifest.name}.")
        if not pieces:
            continue  # plain: the .cast was attached as it is and matches
        tmp = cast.with_name(cast.name + ".tmp")
        joined: IO[bytes] = _Concat(folder, pieces)  # type: ignore[assignment]
        with tmp.open("wb") as out, gzip.GzipFile(mode="rb", fileobj=joined) as gz:
            shutil.copyfileobj(gz, out, _CHUNK)
        if sha256_file(tmp) != sums[cast.name]:
            tmp.unlink()
            raise TicketBackendError(f"The rebuilt {cast.name} does not match {manifest.name}.")
        tmp.replace(cast)
        made.append(cast)
    return made


class _Concat:
    """The pieces read as one file (what ``cat`` would give gunzip)."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        self._names = list(names)
        self._folder = folder
        self._f = None if not names else (folder / self._names.pop(0)).open("rb")

    def read(self, size: int = -1) -> bytes:
        while self._f is not None:
            data = self._f.read(size)
            if data:
                return data
            self._f.close()
            self._f = (self._folder / self._names.pop(0)).open("rb") if self._names else None
        return b""

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


__all__ = [
    "GZIP",
    "MANIFEST_NAMESPACE",
    "PARTS",
    "PLAIN",
    "Package",
    "link_or_copy",
    "manifest_name",
    "prepare",
    "read_manifest",
    "reassemble",
    "sha256_file",
]
