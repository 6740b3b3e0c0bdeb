"""The outbox: sealed transcripts on their way to a ticket, kept until the ticket has them.

Every transcript goes through here, whichever backend it is for:

1. :meth:`Outbox.enqueue` copies the sealed ``.cast`` and ``.sig`` into
   ``<data dir>/outbox/<session id>/``, makes the files to attach (see
   :mod:`toolkit.tickets.package`) and writes ``entry.json``; the folder
   only appears, by one rename, once all of that is on disk.
2. :meth:`Outbox.deliver` verifies the transcript, asks the ticket what it
   already holds, attaches only the files it lacks, downloads every file
   back and compares SHA-256, and only then removes the entry.

An interruption anywhere (kill -9, a network error, the system refusing)
leaves the entry in place with the reason; the next delivery finds the files
that did arrive by name and size (or digest) and does not attach them again,
so a ticket gets each file once. A lock per entry keeps two deliveries
(``connect`` starting while ``tickets sync`` runs) from racing.
"""

from __future__ import annotations

import contextlib
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
from toolkit.errors import TicketBackendError, ToolkitError
from toolkit.identity.signer import Signer
from toolkit.tickets.base import Attachment, TicketBackend
from toolkit.tickets.package import Package, prepare, sha256_file
from toolkit.tickets.summary import comment as make_comment

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


def _copy(src: Path, dest: Path) -> None:
    shutil.copyfile(src, dest)
    with dest.open("rb") as f:
        os.fsync(f.fileno())


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
    ) -> Entry:
        """Put a sealed transcript (``cast`` and ``cast.sig``) in the outbox; its entry.

        Enqueuing the same session again returns the entry already waiting.
        """
        entry_id = _session_id(cast)
        folder = self.root / entry_id
        if (folder / ENTRY).is_file():
            return Entry.load(folder)
        paths.ensure_private_dir(self.root)
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=self.root))
        try:
            _copy(cast, tmp / cast.name)
            sig = cast.with_name(cast.name + ".sig")
            _copy(sig, tmp / sig.name)
            package = prepare(tmp / cast.name, tmp / sig.name, limit, signer)
            for path in package.files:
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
        text, report = make_comment(package, allowed_signers)
        mine = {p.name: (p, sha256_file(p), p.stat().st_size) for p in package.files}
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
            backend.attach(entry.ticket, missing, text)
        after = backend.ticket(entry.ticket).attachments
        checked: list[Attachment] = []
        with tempfile.TemporaryDirectory(prefix="toolkit-readback-") as scratch:
            for name, (_, digest, _) in mine.items():
                match = None
                for candidate in reversed(present(name, after)):
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


__all__ = ["Delivered", "Entry", "Outbox"]
