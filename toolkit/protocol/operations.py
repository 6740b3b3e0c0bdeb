"""The operations a request can name, each with its fields: defined once, for both sides.

docs/protocol.md, "Operations", is the specification. :class:`Op` is a
``StrEnum``: an ``Op`` equals its name on the wire, so ``request.op == Op.RUN``
holds for a parsed request and ``{"op": Op.RUN}`` serialises as ``"run"``.
"""

from __future__ import annotations

import enum
from typing import Any


class Op(enum.StrEnum):
    """A request's ``op``."""

    RUN = "run"  # argv matching one of the agent's command templates
    READ = "read"  # an allowlisted file, whole or its first or last lines
    LIST = "list"  # a directory's entries the policy lets one see
    STAT = "stat"  # an allowlisted path's type, size, mode and time
    DIAG = "diag"  # a named diagnostic
    FIX = "fix"  # a named fix, approved by the customer
    HELLO = "hello"  # the session's start: the agent's catalogue
    END = "end"  # the session's end, with its reason
    CANCEL = "cancel"  # stop a request in flight
    SHELL = "shell"  # a PTY (shell scope only)


#: Each operation's required fields and their JSON types, keyed by Op (which also
#: finds its name as a plain string: an ``Op`` hashes and compares as its value).
OPERATIONS: dict[str, dict[str, type]] = {
    Op.RUN: {"argv": list},
    Op.READ: {"path": str},
    Op.LIST: {"path": str},
    Op.STAT: {"path": str},
    Op.DIAG: {"name": str},
    Op.FIX: {"name": str},
    Op.HELLO: {"session": str},
    Op.END: {"reason": str},
    Op.CANCEL: {"target": int},
    Op.SHELL: {},
}
#: Fields a request may leave out: at most one of read's, any of diag's and fix's.
OPTIONAL: dict[str, dict[str, type]] = {
    Op.READ: {"head": int, "tail": int},  # only the first or the last N lines
    Op.LIST: {"purpose": str},  # a display mark: LIST_PURPOSES
    # declared procedures (docs/protocol.md, "diag, fix"): parameter values, a brought one
    Op.DIAG: {"params": dict, "declaration": dict},
    Op.FIX: {"step": str, "params": dict, "declaration": dict},
}
#: ``fix``'s ``step``: check, apply (when absent), verify or rollback.
FIX_STEPS = frozenset({"check", "apply", "verify", "rollback"})
MAX_PARAMS = 16
MAX_LINES = 1_000_000  # --head/--tail N: 1 .. MAX_LINES
#: ``list``'s ``purpose``: its one value marks a look-up for Tab completion.
LIST_PURPOSES = frozenset({"completion"})
MAX_ARGV = 256
MAX_ARG = 4096
#: Why a shell ended that the session's end cut off: both copies record it so.
SESSION_ENDED = "the session ended"


def lines_asked(args: dict[str, Any]) -> str:
    """``first 5 lines, `` / ``last 1 line, `` for a read with ``head``/``tail`` (else ""):
    the one wording of the customer's log and the technician's footer."""
    for key, word in (("head", "first"), ("tail", "last")):
        count = args.get(key)
        if isinstance(count, int) and not isinstance(count, bool):
            return f"{word} {count} line{'s' if count != 1 else ''}, "
    return ""


__all__ = [
    "FIX_STEPS",
    "LIST_PURPOSES",
    "MAX_ARG",
    "MAX_ARGV",
    "MAX_LINES",
    "MAX_PARAMS",
    "OPERATIONS",
    "OPTIONAL",
    "SESSION_ENDED",
    "Op",
    "lines_asked",
]
