"""The ticket-backend interface: what session code attaches transcripts through.

A backend finds or creates a ticket, attaches files with a comment, lists
what a ticket holds and downloads one attachment back. The local store is
the embedded default; Redmine, RT and the others implement the same protocol
as plugins (see :mod:`toolkit.tickets.plugins`), without session code
changing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from toolkit.errors import UsageError

_TICKET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._#-]{0,63}$")


def check_ticket_id(ticket: str) -> str:
    if not _TICKET_ID.match(ticket):
        raise UsageError(
            f"{ticket[:80]!r} is not a ticket id: use 1-64 letters, digits, '.', '_', '-' or '#'."
        )
    return ticket


@dataclass(frozen=True)
class Attachment:
    name: str
    size: int
    sha256: str  # "" when the ticket system does not say; the read-back check computes it
    attached_at: str  # ISO 8601, UTC
    location: str  # a path or URL where the attachment can be read back
    comment: str = ""
    id: str = ""  # the ticket system's own id for it, when it has one


@dataclass(frozen=True)
class Ticket:
    id: str
    attachments: tuple[Attachment, ...]
    title: str = ""
    url: str = ""


class TicketBackend(Protocol):
    """A ticket system. Methods raise TicketBackendError when the system fails.

    ``max_attachment_bytes`` is the largest single file the system takes
    (None: no limit known); larger transcripts are compressed or split
    before :meth:`attach` sees them.
    """

    name: str
    max_attachment_bytes: int | None

    def ticket(self, ticket: str) -> Ticket:
        """The ticket with its attachments; TicketBackendError if there is none."""
        ...

    def create(self, subject: str, description: str) -> str:
        """Open a new ticket; its id."""
        ...

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]:
        """Attach ``files`` with one comment, in as few steps as the system allows."""
        ...

    def download(self, ticket: str, attachment: Attachment, dest: Path) -> None:
        """Write the attachment's bytes, as the system serves them, to ``dest``."""
        ...


class CheckableBackend(Protocol):
    """A backend that can check its URL and credentials before they are saved.

    ``toolkit tickets login`` calls :meth:`whoami` once, with the URL and the
    secret just given, and saves nothing when it raises. Optional: without
    it, login saves what it was given unchecked and says so.
    """

    def whoami(self) -> str:
        """One read-only request that needs the credentials; who they are ("user alice").

        Raises TicketBackendError (an HTTP refusal, an unreachable system, an
        answer that is not the system's) like any other call.
        """
        ...


__all__ = ["Attachment", "CheckableBackend", "Ticket", "TicketBackend", "check_ticket_id"]
