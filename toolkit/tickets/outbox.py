"""The outbox: sealed transcripts on their way to a ticket, kept until the ticket has them.

Every transcript goes through here, whichever backend it is for:

1. :meth:`Outbox.enqueue` links the sealed ``.cast`` and ``.sig`` into
   ``<data dir>/outbox/<session id>/`` (copies them across file systems),
   makes the files to attach (see :mod:`toolkit.tickets.package`) and writes
   ``entry.json``; the folder only appears, by one rename, once all of that
   is on disk.
2. :meth:`Outbox.deliver` verifies the transcript, checks that it is still
   the one its manifest names, asks the ticket what it already holds,
   attaches only the files it lacks, reads every file back and compares
   SHA-256, and only then removes the entry.

The transcript is read once before it leaves: the verification's pass hashes
it with SHA-256, and a SEALED verdict means the seal signs that hash; the
seal also verifying over the manifest's SHA-256 shows the two are the same,
so nothing hashes the file again. (A transcript that is not SEALED is hashed
on its own.) A ticket file that is the outbox's own file (the local store
links it) is read back by being that file; any other is downloaded and
hashed.

An interruption anywhere (kill -9, a network error, the system refusing)
leaves the entry in place with the reason; the next delivery finds the files
that did arrive by name and size (or digest) and does not attach them again,
so a ticket gets each file once. A lock per entry keeps two deliveries
(``connect`` starting while ``tickets sync`` runs) from racing.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from toolkit import paths
from toolkit.errors import SignatureError, TicketBackendError, ToolkitError
from toolkit.identity.signer import Signer
from toolkit.tickets.base import Attachment, TicketBackend
from toolkit.tickets.package import (
    Package,
    link_or_copy,
    manifest_name,
    prepare,
    read_manifest,
    sha256_file,
)
from toolkit.tickets.summary import comment as make_comment
from toolkit.transcript.verify import Report, Verdict

ENTRY = "entry.json"
_LOCK = ".lock"


@dataclass(frozen=True)
class Entry:
    id: str
    backend: str
    ticket: str
    created: str
    form: str
    transcript: str  # file names inside the entry's folder
    signature: str
    files: tuple[str, ...]  # what is attached, in order
    attempts: int = 0
    last_attempt: str | None = None
    last_error: str | None = None
    #: ids of attachments that failed the read-back check: never counted as delivered
    bad: tuple[str, ...] = ()
    folder: Path = field(default=Path(), compare=False)

    def to_json(self) -> dict[str, object]:
        body = asdict(self)
        body.pop("folder")
        return body

    @classmethod
    def load(cls, folder: Path) -> Entry:
        raw = json.loads((folder / ENTRY).read_text(encoding="utf-8"))
        raw["files"] = tuple(raw["files"])
        raw["bad"] = tuple(raw.get("bad", ()))
        return cls(**raw, folder=folder)

    def package(self) -> Package:
        return Package(
            self.form,
            tuple(self.folder / n for n in self.files),
            self.folder / self.transcript,
            self.folder / self.signature,
        )


@dataclass(frozen=True)
class Delivered:
    entry: Entry
    attachments: tuple[Attachment, ...]
    verdict: str
    uploaded: tuple[str, ...]  # names attached by this delivery (others were already there)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _session_id(cast: Path) -> str:
    from toolkit.transcript.models import Header

    try:
        with cast.open("rb") as f:
            return str(uuid.UUID(Header.from_line(f.readline()).session_id))
    except (OSError, ValueError, ToolkitError):
        return str(uuid.uuid4())


class Outbox:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.data_dir() / "outbox"

    # -- adding ---------------------------------------------------------------------

    def enqueue(
        self,
        backend: str,
        ticket: str,
        cast: Path,
        signer: Signer,
        limit: int | None,
        *,
        sha256: str | None = None,
    ) -> Entry:
        """Put a sealed transcript (``cast`` and ``cast.sig``) in the outbox; its entry.

        ``sha256`` is the transcript's SHA-256 when the caller knows it (the
        recorder does), so that it is not read here; :meth:`deliver` checks it.
        Enqueuing the same session again returns the entry already waiting.
        """
        entry_id = _session_id(cast)
        folder = self.root / entry_id
        if (folder / ENTRY).is_file():
            return Entry.load(folder)
        paths.ensure_private_dir(self.root)
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=self.root))
        try:
            link_or_copy(cast, tmp / cast.name)
            sig = cast.with_name(cast.name + ".sig")
            link_or_copy(sig, tmp / sig.name)
            package = prepare(tmp / cast.name, tmp / sig.name, limit, signer, cast_sha256=sha256)
            for path in package.files:  # a linked file was fsynced when sealed: quick
                with path.open("rb") as f:
                    os.fsync(f.fileno())
            entry = Entry(
                id=entry_id,
                backend=backend,
                ticket=ticket,
                created=_now(),
                form=package.form,
                transcript=cast.name,
                signature=sig.name,
                files=tuple(p.name for p in package.files),
            )
            paths.atomic_write(tmp / ENTRY, json.dumps(entry.to_json(), indent=2).encode())
            os.replace(tmp, folder)
            _fsync_dir(self.root)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise TicketBackendError(
                f"Could not put the transcript in the outbox ({exc.strerror or exc}); "
                f"it stays at {cast}."
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return replace(entry, folder=folder)

    # -- looking --------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or not (folder / ENTRY).is_file():
                continue
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                found.append(Entry.load(folder))
        return sorted(found, key=lambda e: (e.created, e.id))

    # -- delivering -----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, entry: Entry) -> Iterator[bool]:
        try:
            import fcntl
        except ImportError:  # not POSIX: one delivery at a time is up to the user
            yield True
            return
        with (entry.folder / _LOCK).open("a") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _record(self, entry: Entry, error: str | None, bad: tuple[str, ...]) -> Entry:
        updated = replace(
            entry, attempts=entry.attempts + 1, last_attempt=_now(), last_error=error, bad=bad
        )
        with contextlib.suppress(OSError):
            paths.atomic_write(
                entry.folder / ENTRY, json.dumps(updated.to_json(), indent=2).encode()
            )
        return updated

    def deliver(
        self, entry: Entry, backend: TicketBackend, allowed_signers: Path | None = None
    ) -> Delivered | None:
        """Attach ``entry`` to its ticket, read it back, remove it; None if another run holds it.

        Raises TicketBackendError (the entry stays, with the reason) on failure.
        """
        with self._locked(entry) as mine:
            if not mine:
                return None
            if not (entry.folder / ENTRY).is_file():  # another run delivered it meanwhile
                return None
            entry = Entry.load(entry.folder)
            bad: list[str] = list(entry.bad)
            try:
                delivered = self._deliver(entry, backend, allowed_signers, bad)
            except ToolkitError as exc:
                self._record(entry, exc.message, tuple(bad))
                raise
            except Exception as exc:  # a plugin's bug: keep the entry, say what happened
                self._record(entry, f"{type(exc).__name__}: {exc}", tuple(bad))
                raise
            gone = entry.folder.with_name(".done-" + entry.folder.name)
            os.replace(entry.folder, gone)
            _fsync_dir(self.root)
            shutil.rmtree(gone, ignore_errors=True)
            return delivered

    def _deliver(
        self,
        entry: Entry,
        backend: TicketBackend,
        allowed_signers: Path | None,
        bad: list[str],
    ) -> Delivered:
        package = entry.package()
        text, report = make_comment(package, allowed_signers)  # reads the transcript, once
        mine = self._checked(entry, package, report)
        limit = backend.max_attachment_bytes
        for name, (_, _, size) in mine.items():
            if limit is not None and size > limit:
                raise TicketBackendError(
                    f"{name} ({size} bytes) is over {backend.name}'s limit of {limit} bytes, "
                    "which is smaller than when it entered the outbox.",
                    hint="Raise max_attachment_bytes in tickets.toml to what the system takes.",
                )

        def present(name: str, attachments: tuple[Attachment, ...]) -> list[Attachment]:
            _, digest, size = mine[name]
            return [
                a
                for a in attachments
                if a.name == name
                and a.id not in bad
                and (a.sha256 == digest if a.sha256 else a.size in (size, -1))
            ]

        try:
            before = backend.ticket(entry.ticket).attachments
        except TicketBackendError:
            # The local store makes a ticket's folder on its first attachment.
            if not getattr(backend, "creates_on_attach", False):
                raise
            before = ()
        missing = [p for name, (p, _, _) in mine.items() if not present(name, before)]
        if missing:
            if "digests" in inspect.signature(backend.attach).parameters:
                # The local store: it links these files, whose SHA-256 was just checked.
                known = {name: digest for name, (_, digest, _) in mine.items()}
                backend.attach(entry.ticket, missing, text, digests=known)  # type: ignore[call-arg]
            else:
                backend.attach(entry.ticket, missing, text)
        after = backend.ticket(entry.ticket).attachments
        holds = getattr(backend, "holds", None)
        checked: list[Attachment] = []
        with tempfile.TemporaryDirectory(prefix="toolkit-readback-") as scratch:
            for name, (path, digest, _) in mine.items():
                match = None
                for candidate in reversed(present(name, after)):
                    if callable(holds) and holds(entry.ticket, candidate, path):
                        match = candidate  # the ticket's file is this very file
                        break
                    dest = Path(scratch) / "file"
                    backend.download(entry.ticket, candidate, dest)
                    if sha256_file(dest) == digest:
                        match = candidate
                        break
                    bad.append(candidate.id or candidate.location)
                if match is None:
                    raise TicketBackendError(
                        f"{backend.name} ticket {entry.ticket}: {name} did not come back "
                        "with the same SHA-256 after upload.",
                        hint="The system may re-encode or truncate attachments; the transcript "
                        "waits in the outbox (docs/tickets.md).",
                    )
                checked.append(replace(match, sha256=digest))
        return Delivered(
            entry, tuple(checked), report.verdict.value, tuple(p.name for p in missing)
        )

    def _checked(
        self, entry: Entry, package: Package, report: Report
    ) -> dict[str, tuple[Path, str, int]]:
        """name -> (path, SHA-256, size) of every file to attach, each as its manifest says.

        Raises TicketBackendError when a file changed since it entered the outbox:
        what leaves the outbox is what was sealed and listed.
        """
        cast = package.transcript
        sums = read_manifest(entry.folder / manifest_name(cast))
        listed = sums.get(cast.name)
        whole = listed if listed and _seal_signs(package, report, listed) else sha256_file(cast)
        digests = {cast: whole}
        mine: dict[str, tuple[Path, str, int]] = {}
        for path in package.files:
            digest = digests.get(path) or sha256_file(path)
            mine[path.name] = (path, digest, path.stat().st_size)
        for path, digest in [(cast, whole), *((p, d) for p, d, _ in mine.values())]:
            if path.name in sums and sums[path.name] != digest:
                raise TicketBackendError(
                    f"{path.name} changed since it entered the outbox: its SHA-256 is not the "
                    f"one {manifest_name(cast)} lists.",
                    hint=f"Nothing was attached. Compare it with the sealed transcript; "
                    f"the outbox keeps it in {entry.folder}.",
                )
        return mine

    def sync(
        self,
        open_backend: Callable[[str], TicketBackend],
        allowed_signers: Path | None = None,
    ) -> list[tuple[Entry, Delivered | None, ToolkitError | None]]:
        """Try every entry once: (entry, what was delivered or None, the error or None)."""
        results: list[tuple[Entry, Delivered | None, ToolkitError | None]] = []
        backends: dict[str, TicketBackend | ToolkitError] = {}
        for entry in self.entries():
            if entry.backend not in backends:
                try:
                    backends[entry.backend] = open_backend(entry.backend)
                except ToolkitError as exc:
                    backends[entry.backend] = exc
            backend = backends[entry.backend]
            if isinstance(backend, ToolkitError):
                results.append((self._record(entry, backend.message, entry.bad), None, backend))
                continue
            try:
                results.append((entry, self.deliver(entry, backend, allowed_signers), None))
            except ToolkitError as exc:
                results.append((Entry.load(entry.folder), None, exc))
        return results


def _seal_signs(package: Package, report: Report, digest: str) -> bool:
    """Whether the SEALED transcript's seal signs ``digest`` (hex): then it is its SHA-256.

    SEALED means the seal verified over the SHA-256 of the whole file, as the
    verification just read it (format 2; format 1's seal signs SHA-512).
    """
    from toolkit.identity import sshsig
    from toolkit.transcript.models import NAMESPACE_SEAL

    if report.verdict is not Verdict.SEALED or report.header.hash_algorithm != "sha256":
        return False
    if package.signature != package.transcript.with_name(package.transcript.name + ".sig"):
        return False  # not the seal the verification read
    try:
        seal = sshsig.SSHSig.from_bytes(sshsig.dearmor(package.signature.read_bytes()))
        sshsig.verify_digest(seal, bytes.fromhex(digest), NAMESPACE_SEAL)
    except (OSError, ValueError, SignatureError):
        return False
    return True


__all__ = ["Delivered", "Entry", "Outbox"]
