"""The ticket-backend interface: what session code attaches transcripts through.

A backend finds a ticket, attaches files with a comment, and lists what a
ticket holds. The local store is the embedded default; Redmine, RT and others
implement the same protocol as plugins, without session code changing.
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
    sha256: str
    attached_at: str  # ISO 8601, UTC
    location: str  # a path or URL where the attachment can be read back
    comment: str = ""


@dataclass(frozen=True)
class Ticket:
    id: str
    attachments: tuple[Attachment, ...]


class TicketBackend(Protocol):
    """A ticket system. Methods raise TicketBackendError when the system fails."""

    name: str

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]: ...

    def tickets(self) -> list[Ticket]: ...

    def ticket(self, ticket: str) -> Ticket: ...


__all__ = ["Attachment", "Ticket", "TicketBackend", "check_ticket_id"]
