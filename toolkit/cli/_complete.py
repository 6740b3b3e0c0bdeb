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


__all__ = ["SCOPES", "complete_scope"]
