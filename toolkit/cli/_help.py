"""Help texts that name what a person types: ``TICKET``, ``FILE...``, ``[HOST:PORT]``.

typer (0.29) writes a required argument as ``{ticket}`` in the usage line and
puts its Python type after it in the list (``HOST:PORT <str>``). Options say
their metavar (every option taking a value declares one: tests/unit/cli/
test_help_metavars.py); arguments here are shown as click and ssh show them:
the metavar, in brackets when optional, with ``...`` when repeated.
"""

from __future__ import annotations

from typing import Any


def plain_arguments() -> None:
    """Show arguments by their metavar alone; a typer without these hooks is left as it is."""
    from typer import core

    argument: Any = getattr(core, "TyperArgument", None)
    if argument is None or not hasattr(argument, "_usage_display_name"):
        return

    def usage(self: Any) -> str:
        name = str(self.metavar or self.name).upper()
        name = name if self.required else f"[{name}]"
        return f"{name}..." if self.nargs != 1 else name

    def shown_type(self: Any, ctx: Any) -> str | None:
        return None

    argument._usage_display_name = usage
    argument.display_type_rich = shown_type
