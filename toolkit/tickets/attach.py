"""Sealed transcripts onto tickets: through the outbox, so that nothing is lost.

:func:`attach_transcript` is a session's last step (docs/tickets.md): the
sealed transcript goes into the outbox, then onto the ticket if the ticket
system answers; if it does not, it waits there. :func:`sync_quietly` retries
what waits, once and quickly, at a session's start. Neither prints: what
happened comes back as records, and a problem on the way as a sentence handed
to ``note`` (each string in it already made printable).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import TicketBackendError, ToolkitError
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.identity.signer import Signer
    from toolkit.tickets.base import Attachment, TicketBackend
    from toolkit.tickets.credentials import Passphrases
    from toolkit.tickets.outbox import Delivered, Entry

#: A line about the ticket system for the person (already printable).
Note = Callable[[str], None]
#: One outbox entry tried: what was delivered, or why not (Outbox.sync's records).
Synced = tuple["Entry", "Delivered | None", "ToolkitError | None"]
#: How long a session's start waits on each ticket system when it retries the outbox.
QUICK_SYNC = 5.0


def _ignore(text: str) -> None:
    pass


@dataclass(frozen=True)
class Attached:
    """A transcript on its ticket: where it and its signature can be read."""

    backend: str
    ticket: str
    #: The ticket's names for them in the local store; for a remote system, the sealed
    #: files on this machine (the copies the ticket holds were read back and match).
    transcript: str
    signature: str
    sealed: Path  # the sealed transcript on this machine
    in_local_store: bool  # transcript and signature name the local store's copies


def attach_transcript(
    ticket: str,
    cast: Path,
    signer: Signer,
    sha256: str | None = None,
    *,
    passphrase: Passphrases | None = None,
    allowed_signers: Path | None = None,
    note: Note = _ignore,
) -> Attached:
    """The seal's last step: into the outbox, then onto the ticket now if the system answers.

    ``sha256`` is the sealed file's, as the recorder hashed it (checked again
    before anything leaves the outbox); ``passphrase`` opens the ticket
    credentials file if the default backend needs it. When attaching fails,
    the transcript waits in the outbox and TicketBackendError says so, after
    ``note`` heard what went wrong.
    """
    from toolkit.tickets.outbox import Outbox

    name, backend = _default_backend(passphrase, note)
    entry = _enqueue(name, backend, ticket, cast, signer, sha256)
    delivered: Delivered | None = None
    if backend is not None:
        try:
            delivered = Outbox().deliver(entry, backend, allowed_signers)
        except ToolkitError as exc:
            note(
                f"Could not attach the transcript to {name} ticket {printable(ticket)}: "
                f"{printable(exc.message)}"
            )
    if delivered is None:
        raise _waits(entry)
    return attached(delivered, cast)


def enqueuer(
    ticket: str,
    cast: Path,
    signer: Signer,
    sha256: str | None = None,
    *,
    passphrase: Passphrases | None = None,
    note: Note = _ignore,
) -> Callable[[], Entry]:
    """The seal's last step when the caller attaches later (a fleet, all its hosts at once
    with :func:`deliver_entries`): the step that puts the transcript in the outbox.

    The backend is opened now (its limit decides the files; it may ask for the
    passphrase, so on the caller's thread); the step returned only writes files
    and syncs them to disk, and can run on a worker thread.
    """
    name, backend = _default_backend(passphrase, note)
    return functools.partial(_enqueue, name, backend, ticket, cast, signer, sha256)


def deliver_entries(
    ids: Iterable[str],
    *,
    passphrase: Passphrases | None = None,
    allowed_signers: Path | None = None,
    note: Note = _ignore,
) -> list[Synced]:
    """Deliver the outbox's entries ``ids`` together (Outbox.deliver_many): a record each.

    Entries for a backend that cannot be opened stay, with the reason. What
    fails waits in the outbox for ``toolkit tickets sync``.
    """
    from toolkit.tickets.outbox import Outbox
    from toolkit.tickets.plugins import open_backend

    wanted = set(ids)
    box = Outbox()
    chosen = [e for e in box.entries() if e.id in wanted]

    def opened(name: str) -> TicketBackend:
        return open_backend(name, passphrase)

    return box.sync(opened, allowed_signers, chosen)


def attached(delivered: Delivered, cast: Path) -> Attached:
    """Where a delivered transcript (sealed at ``cast``) and its signature can be read."""
    entry = delivered.entry
    by_name = {a.name: a.location for a in delivered.attachments}
    sig = cast.name + ".sig"
    if entry.backend == "local" and cast.name in by_name:
        return Attached(entry.backend, entry.ticket, by_name[cast.name], by_name[sig], cast, True)
    return Attached(entry.backend, entry.ticket, str(cast), str(cast.with_name(sig)), cast, False)


def _default_backend(
    passphrase: Passphrases | None, note: Note
) -> tuple[str, TicketBackend | None]:
    """The default backend's name, and the backend (None, after a note, if it cannot open)."""
    from toolkit.tickets.plugins import default_backend, open_backend

    name = default_backend()
    try:
        return name, open_backend(name, passphrase)
    except ToolkitError as exc:
        note(f"The {name} ticket backend cannot be used: {printable(exc.message)}")
        return name, None


def _enqueue(
    name: str,
    backend: TicketBackend | None,
    ticket: str,
    cast: Path,
    signer: Signer,
    sha256: str | None,
) -> Entry:
    from toolkit.tickets.outbox import Outbox
    from toolkit.tickets.package import MIN_LIMIT

    # Without the backend: the smallest common default (Redmine's).
    limit = backend.max_attachment_bytes if backend is not None else max(MIN_LIMIT, 5 << 20)
    return Outbox().enqueue(name, ticket, cast, signer, limit, sha256=sha256)


def _waits(entry: Entry) -> TicketBackendError:
    cast = entry.folder / entry.transcript
    return TicketBackendError(
        f"The transcript is sealed at {cast} and waits in the outbox ({entry.folder}).",
        hint="`toolkit tickets sync` attaches it; `toolkit tickets outbox` shows why it waits.",
    )


def sync_quietly(
    passphrase: Passphrases | None = None,
    allowed_signers: Path | None = None,
    note: Note = _ignore,
) -> list[Synced]:
    """Try the outbox once, each ticket system for at most :data:`QUICK_SYNC` seconds.

    For a session's start: never an error. An outbox that cannot be tried at
    all is a ``note``; each entry tried is a record, attached or not.
    """
    from toolkit.tickets.outbox import Outbox

    box = Outbox()
    if not box.entries():
        return []
    from toolkit.tickets.http import quick
    from toolkit.tickets.plugins import open_backend

    def opened(name: str) -> TicketBackend:
        return open_backend(name, passphrase)

    try:
        with quick(QUICK_SYNC):
            return box.sync(opened, allowed_signers)
    except Exception as exc:  # never stop a session from starting
        note(f"Could not try the outbox ({printable(exc)}); `toolkit tickets sync` tries again.")
        return []


def attach_files(
    ticket: str,
    files: list[Path],
    comment: str,
    *,
    passphrase: Passphrases | None = None,
) -> list[Attachment]:
    """Attach small files (a fleet's signed run summary and its ``.sig``) to ``ticket`` with
    the default backend, at once; TicketBackendError when it cannot (nothing waits in the
    outbox: the files stay where they are)."""
    from toolkit.tickets.plugins import default_backend, open_backend

    backend = open_backend(default_backend(), passphrase)
    return backend.attach(ticket, files, comment)


__all__ = [
    "QUICK_SYNC",
    "Attached",
    "Note",
    "Synced",
    "attach_files",
    "attach_transcript",
    "attached",
    "deliver_entries",
    "enqueuer",
    "sync_quietly",
]
