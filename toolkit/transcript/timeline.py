"""A transcript's structured events in order, with their times: what ``toolkit show`` lists.

Only the part of the file that the verdict vouches for is read: the bytes
the valid checkpoints cover (``Report.valid_bytes``). Anything after them
may have been written by anyone, so it is counted, never shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.inputs import UnreadableInput, open_regular
from toolkit.transcript.models import EVENT, Event, counted_as

_EVENT_MARK = b', "e", "'
#: No event line toolkit writes is longer; a longer one is skipped, not read into memory.
_MAX_LINE = 16 << 20


@dataclass(frozen=True)
class Entry:
    """One structured event: when (seconds from the start), where, and its fields."""

    time: float
    line: int  # 1-based line number in the file
    fields: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.fields.get("type"))

    @property
    def counted(self) -> str | None:
        """How toolkit verify counts it: ``operation``, ``refusal``, ``lookup`` or None."""
        return counted_as(self.fields)

    def to_json(self, started: int) -> dict[str, Any]:
        return {
            "line": self.line,
            "t": self.time,
            "at": started + self.time,
            "type": self.type,
            "counted": self.counted,
            "fields": self.fields,
        }


def entries(path: Path, valid_bytes: int) -> list[Entry]:
    """The ``e`` events in the first ``valid_bytes`` bytes of ``path``, in file order.

    A line there that does not parse as an event is skipped: the verdict has
    said what is wrong with the file, and the timeline shows what is in it.
    """
    try:
        f = open_regular(path, what="the transcript")
    except UnreadableInput:
        return []
    found: list[Entry] = []
    with f:
        offset = len(f.readline(_MAX_LINE))
        number = 1
        while offset < valid_bytes:
            raw = f.readline(_MAX_LINE)
            if not raw:
                break
            offset += len(raw)
            number += 1
            if not raw.endswith(b"\n"):  # longer than any event line: skip the rest of it
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(_MAX_LINE)
                    offset += len(raw)
                continue
            if offset > valid_bytes or _EVENT_MARK not in raw:
                continue
            try:
                event = Event.from_line(raw)
                if event.code != EVENT:
                    continue
                fields = event.fields()
            except (ValueError, UnicodeDecodeError, RecursionError):
                continue
            found.append(Entry(event.time, number, fields))
    return found


__all__ = ["Entry", "entries"]
