"""JSON objects whose names are unique: the one hook that refuses a name given twice.

``{"ticket": "T-1", "ticket": "T-2"}`` is valid JSON, but readers differ on
what it says: Python and jq take the last value, others the first or an
error. A message, a transcript header or a consent step that could say two
things to two tools is refused instead. Use it as ``json.loads(text,
object_pairs_hook=unique_names)`` and catch :class:`DuplicateName`.
"""

from __future__ import annotations

from typing import Any


class DuplicateName(ValueError):
    """A JSON object gave one name twice; ``name`` is that name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``dict(pairs)``, or DuplicateName for the first name given twice."""
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise DuplicateName(name)
        found[name] = value
    return found


__all__ = ["DuplicateName", "unique_names"]
