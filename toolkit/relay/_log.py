"""The relay's log: one JSON object a line, about connections and rendezvous, never content.

Every line has ``ts`` (UTC, ISO 8601, milliseconds) and ``event``; the other
fields are listed in docs/relay.md. Nothing a session carries (bytes, codes,
keys other than fingerprints) is ever passed here: the relay never sees a
code, and it only counts the bytes it forwards.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, TextIO

from toolkit.text import printable

#: Longest text kept from a peer-supplied string (a name or a path a technician asked for).
MAX_TEXT = 64


def clip(text: str) -> str:
    """A peer-supplied string, cut short and made printable.

    json.dumps would escape control characters anyway, but whoever reads a
    field back (``jq -r .why``, a log viewer) prints it decoded: it must hold
    no escape sequence then either.
    """
    return printable(text, MAX_TEXT)


class EventLog:
    """Writes events to ``stream`` (flushed each line); None writes nothing."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        if self._stream is None:
            return
        now = datetime.datetime.now(datetime.UTC)
        line = {"ts": now.isoformat(timespec="milliseconds"), "event": event, **fields}
        self._stream.write(json.dumps(line, separators=(",", ":"), ensure_ascii=True) + "\n")
        self._stream.flush()


__all__ = ["EventLog", "clip"]
