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
from collections.abc import Callable, Iterator, Sequence
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
#: Entries delivered together at most (each holds its lock file open meanwhile).
_BATCH = 500
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


#: One entry tried: what was delivered (None: not this time), or why not.
Tried = tuple[Entry, Delivered | None, ToolkitError | None]


@dataclass
class _Ready:
    """An entry checked and about to go: its comment, and its files with their SHA-256."""

    entry: Entry
    comment: str
    verdict: str
    mine: dict[str, tuple[Path, str, int]]  # name -> (path, SHA-256, size)
    bad: list[str]  # attachment ids that failed a read-back: never counted as delivered
    missing: list[Path] = field(default_factory=list)  # what this delivery attaches

    def present(self, name: str, attachments: tuple[Attachment, ...]) -> list[Attachment]:
        """The ticket's attachments that are this entry's file ``name``."""
        _, digest, size = self.mine[name]
        return [
            a
            for a in attachments
            if a.name == name
            and a.id not in self.bad
            and (a.sha256 == digest if a.sha256 else a.size in (size, -1))
        ]


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
        ((_, delivered, error),) = self.deliver_many([entry], backend, allowed_signers)
        if error is not None:
            raise error
        return delivered

    def deliver_many(
        self,
        entries: Sequence[Entry],
        backend: TicketBackend,
        allowed_signers: Path | None = None,
    ) -> list[Tried]:
        """Deliver ``entries`` (all for ``backend``) together: (entry, delivered, error) each.

        Per ticket, the ticket is asked once what it holds before and once after,
        and the files it lacks go in one attach call when the backend takes a
        comment per file (the local store), else one call per transcript, each
        with its own comment. Each entry is read back and removed on its own: one
        that fails keeps its place in the outbox, with the reason, and does not
        hold up the others. An entry another run holds is (entry, None, None).
        A plugin's bug (an exception that is not a ToolkitError) is recorded on
        the entries it touched and raised.
        """
        results: dict[str, Tried] = {}
        for start in range(0, len(entries), _BATCH):  # each entry's lock is an open file
            results.update(
                self._deliver_batch(entries[start : start + _BATCH], backend, allowed_signers)
            )
        return [results[e.id] for e in entries]

    def _deliver_batch(
        self, entries: Sequence[Entry], backend: TicketBackend, allowed_signers: Path | None
    ) -> dict[str, Tried]:
        results: dict[str, Tried] = {}
        by_ticket: dict[str, list[Entry]] = {}
        with contextlib.ExitStack() as stack:
            for entry in entries:
                try:
                    mine = stack.enter_context(self._locked(entry))
                except FileNotFoundError:  # another run delivered it and removed its folder
                    mine = False
                if not mine or not (entry.folder / ENTRY).is_file():
                    results[entry.id] = (entry, None, None)  # another run holds or delivered it
                    continue
                entry = Entry.load(entry.folder)
                by_ticket.setdefault(entry.ticket, []).append(entry)
            done: list[Entry] = []
            for ticket, group in by_ticket.items():
                for tried in self._deliver_group(ticket, group, backend, allowed_signers):
                    results[tried[0].id] = tried
                    if tried[1] is not None:
                        done.append(tried[0])
            self._remove(done)
        return results

    def _remove(self, done: Sequence[Entry]) -> None:
        """Take delivered entries out of the outbox: renamed away, then deleted."""
        gone = []
        for entry in done:
            away = entry.folder.with_name(".done-" + entry.folder.name)
            os.replace(entry.folder, away)
            gone.append(away)
        if gone:
            _fsync_dir(self.root)  # once for the batch: every rename is on disk
        for away in gone:
            shutil.rmtree(away, ignore_errors=True)

    def _deliver_group(
        self,
        ticket: str,
        group: Sequence[Entry],
        backend: TicketBackend,
        allowed_signers: Path | None,
    ) -> list[Tried]:
        """Deliver the entries of one ticket; every entry's outcome, its failure recorded."""
        out: list[Tried] = []
        ready: list[_Ready] = []
        for entry in group:  # each entry's own checks: one that fails stays behind alone
            bad = list(entry.bad)
            try:
                ready.append(self._prepare(entry, backend, allowed_signers, bad))
            except ToolkitError as exc:
                out.append((self._record(entry, exc.message, tuple(bad)), None, exc))
            except Exception as exc:  # a bug: keep the entry, say what happened
                self._record(entry, f"{type(exc).__name__}: {exc}", tuple(bad))
                raise
        if not ready:
            return out
        try:
            self._attach_missing(ticket, ready, backend)
            after = backend.ticket(ticket).attachments
        except ToolkitError as exc:
            for r in ready:  # nothing is known to be on the ticket: every one waits
                out.append((self._record(r.entry, exc.message, tuple(r.bad)), None, exc))
            return out
        except Exception as exc:  # a plugin's bug: keep the entries, say what happened
            for r in ready:
                self._record(r.entry, f"{type(exc).__name__}: {exc}", tuple(r.bad))
            raise
        for r in ready:
            try:
                out.append((r.entry, self._read_back(r, after, backend), None))
            except ToolkitError as exc:
                out.append((self._record(r.entry, exc.message, tuple(r.bad)), None, exc))
            except Exception as exc:
                self._record(r.entry, f"{type(exc).__name__}: {exc}", tuple(r.bad))
                raise
        return out

    def _prepare(
        self,
        entry: Entry,
        backend: TicketBackend,
        allowed_signers: Path | None,
        bad: list[str],
    ) -> _Ready:
        """Verify ``entry``'s transcript (for its comment) and check its files against the
        manifest and the backend's limit."""
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
        return _Ready(entry, text, report.verdict.value, mine, bad)

    def _attach_missing(self, ticket: str, ready: Sequence[_Ready], backend: TicketBackend) -> None:
        """Attach what the ticket lacks of each entry (found by name and size or digest)."""
        try:
            before = backend.ticket(ticket).attachments
        except TicketBackendError:
            # The local store makes a ticket's folder on its first attachment.
            if not getattr(backend, "creates_on_attach", False):
                raise
            before = ()
        for r in ready:
            r.missing = [p for name, (p, _, _) in r.mine.items() if not r.present(name, before)]
        wanted = [r for r in ready if r.missing]
        if not wanted:
            return
        params = inspect.signature(backend.attach).parameters
        if "digests" in params and "comments" in params:
            # The local store: one call for them all, each file with its transcript's
            # comment; it links these files, whose SHA-256 was just checked.
            files = [p for r in wanted for p in r.missing]
            known = {n: d for r in wanted for n, (_, d, _) in r.mine.items()}
            comments = {p.name: r.comment for r in wanted for p in r.missing}
            backend.attach(  # type: ignore[call-arg]
                ticket, files, wanted[0].comment, digests=known, comments=comments
            )
            return
        for r in wanted:  # a comment per call: one call per transcript
            if "digests" in params:
                known = {name: digest for name, (_, digest, _) in r.mine.items()}
                backend.attach(ticket, r.missing, r.comment, digests=known)  # type: ignore[call-arg]
            else:
                backend.attach(ticket, r.missing, r.comment)

    def _read_back(
        self, r: _Ready, after: tuple[Attachment, ...], backend: TicketBackend
    ) -> Delivered:
        """Find each of ``r``'s files on the ticket with its SHA-256: what was delivered."""
        entry = r.entry
        holds = getattr(backend, "holds", None)
        checked: list[Attachment] = []
        with tempfile.TemporaryDirectory(prefix="toolkit-readback-") as scratch:
            for name, (path, digest, _) in r.mine.items():
                match = None
                for candidate in reversed(r.present(name, after)):
                    if callable(holds) and holds(entry.ticket, candidate, path):
                        match = candidate  # the ticket's file is this very file
                        break
                    dest = Path(scratch) / "file"
                    backend.download(entry.ticket, candidate, dest)
                    if sha256_file(dest) == digest:
                        match = candidate
                        break
                    r.bad.append(candidate.id or candidate.location)
                if match is None:
                    raise TicketBackendError(
                        f"{backend.name} ticket {entry.ticket}: {name} did not come back "
                        "with the same SHA-256 after upload.",
                        hint="The system may re-encode or truncate attachments; the transcript "
                        "waits in the outbox (docs/tickets.md).",
                    )
                checked.append(replace(match, sha256=digest))
        return Delivered(entry, tuple(checked), r.verdict, tuple(p.name for p in r.missing))

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
        entries: Sequence[Entry] | None = None,
    ) -> list[Tried]:
        """Try every entry (or ``entries``) once, each backend's together (:meth:`deliver_many`)."""
        every = self.entries() if entries is None else list(entries)
        by_backend: dict[str, list[Entry]] = {}
        for entry in every:
            by_backend.setdefault(entry.backend, []).append(entry)
        results: dict[str, Tried] = {}
        for name, waiting in by_backend.items():
            try:
                backend = open_backend(name)
            except ToolkitError as exc:
                for entry in waiting:
                    results[entry.id] = (self._record(entry, exc.message, entry.bad), None, exc)
                continue
            for entry, delivered, error in self.deliver_many(waiting, backend, allowed_signers):
                results[entry.id] = (entry, delivered, error)
        return [results[e.id] for e in every]


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


__all__ = ["Delivered", "Entry", "Outbox", "Tried"]
