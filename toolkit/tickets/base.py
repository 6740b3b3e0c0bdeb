"""The ticket-backend interface: what session code attaches transcripts through.

A backend finds or creates a ticket, attaches files with a comment, lists
what a ticket holds and downloads one attachment back. The local store is
the embedded default; Redmine, RT and the others implement the same protocol
as plugins (see :mod:`toolkit.tickets.plugins`), without session code
changing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from toolkit.errors import TicketBackendError, UsageError
from toolkit.secrets import Secret
from toolkit.tickets import credentials

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


# -- what a plugin gives: a backend's maker and what it needs ------------------------


@dataclass(frozen=True)
class BackendConfig:
    """What a backend is made from: its settings and, when it needs one, its secret."""

    name: str
    url: str = ""
    user: str = ""
    options: Mapping[str, str | int | bool] = field(default_factory=dict)
    secret: Secret | None = None

    def option(self, key: str, default: str) -> str:
        return str(self.options.get(key, default))

    def limit(self, default: int | None) -> int | None:
        """``max_attachment_bytes`` from tickets.toml, else the backend's default."""
        value = self.options.get("max_attachment_bytes")
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UsageError(
                f"tickets.toml: [{self.name}] max_attachment_bytes must be a positive integer."
            )
        return value

    def need_secret(self, label: str) -> str:
        if self.secret is None:
            raise TicketBackendError(
                f"No {label} for {self.name} at {self.url or '(no URL)'}: none in "
                f"{credentials.token_env(self.name)}, the OS keyring or the credentials file.",
                hint=f"Store one with `toolkit tickets login {self.name} --url URL`.",
            )
        return self.secret.reveal()


@dataclass(frozen=True)
class TicketPlugin:
    """One ticket backend, as a :class:`toolkit.plugins.Plugin` gives it in ``ticket_backends``."""

    name: str
    summary: str
    make: Callable[[BackendConfig], TicketBackend]
    credential: str | None = "API key"  # None: the backend needs no secret
    user_label: str | None = None  # e.g. "email" where the key goes with an account name
    options: Mapping[str, str] = field(default_factory=dict)  # tickets.toml keys -> help
    needs_url: bool = True


__all__ = [
    "Attachment",
    "BackendConfig",
    "CheckableBackend",
    "Ticket",
    "TicketBackend",
    "TicketPlugin",
    "check_ticket_id",
]
