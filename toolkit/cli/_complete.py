"""Values the shell completes for options (typer's ``autocompletion``).

Completion runs the whole program for each Tab, so nothing heavy is imported
here: the scope names are written out (a unit test keeps them equal to
``toolkit.consent.Scope``).
"""

from __future__ import annotations

#: ``toolkit.consent.Scope``'s values, in the order --help lists them.
SCOPES = ("diagnostics", "fixes", "shell")


def complete_scope(incomplete: str) -> list[str]:
    """``--scope`` values that start with what is typed."""
    return [name for name in SCOPES if name.startswith(incomplete)]


def complete_ticket(incomplete: str) -> list[str]:
    """Ticket ids of the local store that start with what is typed (a remote system's ids
    are not listed: asking it on every Tab would be slow and may ask for a passphrase)."""
    from toolkit.errors import ToolkitError
    from toolkit.tickets.local import LocalTickets

    try:
        known = [t.id for t in LocalTickets().tickets()]
    except (ToolkitError, OSError):
        return []  # completion never prints an error into the command line
    return [ticket for ticket in known if ticket.startswith(incomplete)]


__all__ = ["SCOPES", "complete_scope", "complete_ticket"]
