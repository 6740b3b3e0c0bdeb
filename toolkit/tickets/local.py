"""The embedded default backend: tickets as folders under the data dir.

``<data>/tickets/<ticket>/`` holds the attached files and ``ticket.json``,
the list of attachments. A file is attached as another name (a hard link) of
the file it is given when both are on one file system, so a transcript is
kept once on disk, and copied otherwise; either goes in under a temporary
name, on disk before it is renamed, so a crash never leaves a half-attached
file listed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from toolkit import __version__, paths
from toolkit.errors import TicketBackendError
from toolkit.plugins.plugin import Plugin
from toolkit.tickets.base import Attachment, BackendConfig, Ticket, TicketPlugin, check_ticket_id
from toolkit.tickets.package import link_or_copy


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class LocalTickets:
    name = "local"
    max_attachment_bytes: int | None = None
    creates_on_attach = True  # any ticket id: its folder appears with its first attachment

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.data_dir() / "tickets"

    def _dir(self, ticket: str) -> Path:
        return self.root / check_ticket_id(ticket)

    def _index(self, ticket: str) -> list[Attachment]:
        index = self._dir(ticket) / "ticket.json"
        try:
            raw = json.loads(index.read_text(encoding="utf-8"))
            return [Attachment(**a) for a in raw["attachments"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise TicketBackendError(
                f"The local ticket index {index} is damaged ({exc}).",
                hint="Move it aside; the attached files next to it are intact.",
            ) from None

    def _subject(self, ticket: str) -> str:
        try:
            raw = json.loads((self._dir(ticket) / "ticket.json").read_text(encoding="utf-8"))
            return str(raw.get("subject", ""))
        except (OSError, ValueError, AttributeError):
            return ""

    def attach(
        self,
        ticket: str,
        files: list[Path],
        comment: str,
        *,
        digests: Mapping[str, str] | None = None,
        comments: Mapping[str, str] | None = None,
    ) -> list[Attachment]:
        """Attach ``files``; ``digests`` (name -> SHA-256) are what the caller checked them to be.

        ``comments`` (name -> text) gives a file a comment of its own instead of
        ``comment``: many transcripts, each with its own, go in at once with one
        rewrite of the index (the outbox's batches).

        A file linked in is the caller's own, so its known digest holds without
        reading it; a copy is hashed and must match it (or its source).
        """
        known = digests or {}
        folder = self._dir(ticket)
        try:
            paths.ensure_private_dir(folder)
            existing = self._index(ticket)
            added: list[Attachment] = []
            for src in files:
                name = src.name
                taken = {a.name for a in existing + added}
                stem, n = name, 1
                while name in taken:  # never overwrite an earlier attachment
                    n += 1
                    name = f"{n}-{stem}"
                dest = folder / name
                tmp = dest.with_name(dest.name + ".tmp")
                expected = known.get(src.name)
                if link_or_copy(src, tmp):
                    digest = expected or _sha256(tmp)
                else:
                    digest = _sha256(tmp)
                    if digest != (expected or _sha256(src)):
                        tmp.unlink()
                        raise TicketBackendError(f"{dest} does not match {src} after copying.")
                os.replace(tmp, dest)
                added.append(
                    Attachment(
                        name=name,
                        size=dest.stat().st_size,
                        sha256=digest,
                        attached_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        location=str(dest),
                        comment=(comments or {}).get(src.name, comment),
                    )
                )
            body = {
                "ticket": ticket,
                "subject": self._subject(ticket),
                "attachments": [asdict(a) for a in existing + added],
            }
            index = (json.dumps(body, indent=2) + "\n").encode()
            paths.atomic_write(folder / "ticket.json", index, 0o600)
        except OSError as exc:
            raise TicketBackendError(
                f"Could not attach to local ticket {ticket}: {exc.strerror or exc}."
            ) from None
        return added

    def ticket(self, ticket: str) -> Ticket:
        if not self._dir(ticket).is_dir():
            raise TicketBackendError(
                f"There is no local ticket {ticket!r}.",
                hint="`toolkit tickets list` shows the tickets that have attachments.",
            )
        return Ticket(
            ticket, tuple(self._index(ticket)), self._subject(ticket), str(self._dir(ticket))
        )

    def create(self, subject: str, description: str) -> str:
        """A new ticket folder named L-<n>, with the subject in its index."""
        paths.ensure_private_dir(self.root)
        taken = {d.name for d in self.root.iterdir()}
        n = 1
        while f"L-{n}" in taken:
            n += 1
        ticket = f"L-{n}"
        folder = paths.ensure_private_dir(self._dir(ticket))
        body = {"ticket": ticket, "subject": subject, "attachments": []}
        paths.atomic_write(folder / "ticket.json", (json.dumps(body, indent=2) + "\n").encode())
        return ticket

    def holds(self, ticket: str, attachment: Attachment, path: Path) -> bool:
        """Whether ``attachment`` is ``path`` itself (linked in): reading either reads both."""
        src = Path(attachment.location)
        if src.parent != self._dir(ticket):
            return False
        try:
            return os.path.samefile(src, path)
        except OSError:
            return False

    def download(self, ticket: str, attachment: Attachment, dest: Path) -> None:
        src = Path(attachment.location)
        if src.parent != self._dir(ticket):
            raise TicketBackendError(f"{attachment.name} is not an attachment of {ticket}.")
        try:
            shutil.copyfile(src, dest)
        except OSError as exc:
            raise TicketBackendError(f"Cannot read {src}: {exc.strerror or exc}.") from None

    def tickets(self) -> list[Ticket]:
        if not self.root.is_dir():
            return []
        return [self.ticket(d.name) for d in sorted(self.root.iterdir()) if d.is_dir()]


def _make(config: BackendConfig) -> LocalTickets:
    folder = config.options.get("folder")
    return LocalTickets(Path(str(folder)).expanduser() if folder else None)


plugin = TicketPlugin(
    name="local",
    summary="Tickets as folders under the data dir (the default; needs no set-up)",
    make=_make,
    credential=None,
    needs_url=False,
    options={"folder": "where the ticket folders live [default: <data dir>/tickets]"},
)

#: toolkit's own entry point in ``toolkit.plugins``: ``builtin = "toolkit.tickets.local:bundle"``.
bundle = Plugin(
    name="builtin",
    version=__version__,
    summary="What toolkit itself provides: the local ticket backend",
    ticket_backends=(plugin,),
)

__all__ = ["LocalTickets", "bundle", "plugin"]
