"""What the agent reports when it asked the customer: the approval's shape and digest.

docs/transcript-format.md, "Approvals", and docs/protocol.md describe it; the
agent builds the report (toolkit.agent.operations) and the technician's side
checks it before recording it (toolkit.session.technician.checked_approval).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: An approval report's fields (docs/transcript-format.md, "Approvals"), both sides.
APPROVAL_FIELDS = frozenset(
    {
        "answer",
        "by",
        "at",
        "request",
        "asked_for",
        "procedure",
        "summary",
        "commands",
        "commands_sha256",
        "out_of_scope",
    }
)
#: An approval sent with a response carries its commands only up to this many steps and
#: this size of compact JSON (a ``run`` may be 256 arguments of 4096 characters);
#: beyond either, ``commands`` is null and ``commands_sha256`` alone travels.
MAX_APPROVAL_STEPS = 64
MAX_APPROVAL_COMMANDS = 32 * 1024


def commands_sha256(commands: Any) -> str:
    """The SHA-256 of an approval's commands as compact ASCII JSON (docs/protocol.md)."""
    return hashlib.sha256(json.dumps(commands, separators=(",", ":")).encode()).hexdigest()


__all__ = ["APPROVAL_FIELDS", "MAX_APPROVAL_COMMANDS", "MAX_APPROVAL_STEPS", "commands_sha256"]
