"""The embedded default backend: tickets as folders under the data dir.

``<data>/tickets/<ticket>/`` holds the attached files and ``ticket.json``,
the list of attachments. Writes go to a temporary name, are fsynced, then
renamed, so a crash never leaves a half-attached file listed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from toolkit import paths
from toolkit.errors import TicketBackendError
from toolkit.tickets.base import Attachment, Ticket, check_ticket_id


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class LocalTickets:
    name = "local"

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

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]:
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
                shutil.copyfile(src, tmp)
                with tmp.open("rb") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
                digest = _sha256(dest)
                if digest != _sha256(src):
                    raise TicketBackendError(f"{dest} does not match {src} after copying.")
                added.append(
                    Attachment(
                        name=name,
                        size=dest.stat().st_size,
                        sha256=digest,
                        attached_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        location=str(dest),
                        comment=comment,
                    )
                )
            body = {"ticket": ticket, "attachments": [asdict(a) for a in existing + added]}
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
        return Ticket(ticket, tuple(self._index(ticket)))

    def tickets(self) -> list[Ticket]:
        if not self.root.is_dir():
            return []
        return [self.ticket(d.name) for d in sorted(self.root.iterdir()) if d.is_dir()]


__all__ = ["LocalTickets"]
