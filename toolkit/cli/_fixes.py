"""The technician's own declaration of a fix, and what to say when they have none.

``toolkit run`` checks parameters against it before connecting, for one host
or a fleet (toolkit.cli.fleet); the customer's machine may still have a fix
the technician lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.cli._console import say
from toolkit.errors import UsageError
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.plugins import Fix


def technician_fix(name: str) -> Fix | None:
    """The technician's own declaration of the fix ``name``, from their installed plugins."""
    from toolkit.plugins import Fix, Kind
    from toolkit.plugins.loader import installed

    found = installed().find(Kind.FIX, name)
    if found is None:
        return None
    procedure, _ = found
    return procedure if isinstance(procedure, Fix) else None


def not_yours(name: str) -> None:
    """Before the customer is asked: a diagnostic's name is a usage error, a near miss of one
    of your fixes gets a warning (the customer's machine may still have a fix of that name)."""
    import difflib

    from toolkit.plugins import Kind
    from toolkit.plugins.loader import installed

    if installed().find(Kind.DIAGNOSTIC, name) is not None:
        raise UsageError(
            f"{name} is a diagnostic, not a fix: toolkit run runs fixes.",
            hint=f"Run it in a session: toolkit connect ..., then `diag {name}`.",
        )
    yours = [p.name for p, _ in installed().procedures() if p.kind is Kind.FIX]
    close = difflib.get_close_matches(name, yours, n=1)
    maybe = f" (did you mean {close[0]}?)" if close else ""
    say(
        printable(
            f"warning: none of your plugins has a fix named {name}{maybe}; "
            "the customer's machine must have it."
        )
    )


__all__ = ["not_yours", "technician_fix"]
