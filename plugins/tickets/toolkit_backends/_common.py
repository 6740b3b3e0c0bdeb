"""Small pieces the backends share."""

from __future__ import annotations

import re
from pathlib import Path

from toolkit.errors import UsageError
from toolkit.tickets.base import Attachment

OCTET = "application/octet-stream"


def parse_time(value: object) -> str:
    """An ISO 8601 time as the systems send it, or "" when there is none."""
    return str(value) if value else ""


def attachment_from(
    name: object, size: object, when: object, location: str, ident: object, comment: str = ""
) -> Attachment:
    try:
        length = int(str(size))
    except ValueError:
        length = -1  # the system does not say: the read-back check decides
    return Attachment(
        name=str(name),
        size=length,
        sha256="",
        attached_at=parse_time(when),
        location=location,
        comment=comment,
        id=str(ident),
    )


def numeric_id(system: str, ticket: str) -> str:
    """A ticket number like 42 (or #42)."""
    number = ticket.lstrip("#")
    if not re.fullmatch(r"[1-9][0-9]{0,17}", number):
        raise UsageError(f"{ticket!r} is not a {system} ticket number (digits, like 42).")
    return number


def names(files: list[Path]) -> set[str]:
    return {p.name for p in files}


def latest(attachments: tuple[Attachment, ...], wanted: set[str]) -> list[Attachment]:
    """The newest attachment of each wanted name."""
    found: dict[str, Attachment] = {}
    for a in attachments:
        if a.name in wanted:
            found[a.name] = a
    return list(found.values())
