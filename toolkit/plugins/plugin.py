"""What a plugin is: one object behind one entry point in the ``toolkit.plugins`` group.

A distribution registers it the same way whether it is first-party (plugins/)
or anyone else's::

    [project.entry-points."toolkit.plugins"]
    myplugin = "mypackage:plugin"

where ``mypackage.plugin`` is a :class:`Plugin`. docs/plugins.md is the guide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.plugins.declaration import NAME, DeclarationError, Procedure

if TYPE_CHECKING:
    from toolkit.tickets.plugins import TicketPlugin

#: The entry-point group every plugin registers in.
GROUP = "toolkit.plugins"


@dataclass(frozen=True)
class Plugin:
    """A plugin: its name and version, and what it provides.

    ``procedures`` are diagnostics and fixes (declared as data, see
    :mod:`toolkit.plugins.declaration`); ``ticket_backends`` are where
    transcripts are attached (:class:`toolkit.tickets.plugins.TicketPlugin`).
    """

    name: str
    version: str
    summary: str = ""
    procedures: tuple[Procedure, ...] = ()
    ticket_backends: tuple[TicketPlugin, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise DeclarationError(
                f"plugin name {str(self.name)[:64]!r} is not lower-case-with-dashes."
            )
        object.__setattr__(self, "procedures", tuple(self.procedures))
        object.__setattr__(self, "ticket_backends", tuple(self.ticket_backends))
        if not all(isinstance(p, Procedure) for p in self.procedures):
            raise DeclarationError(f"plugin {self.name}: procedures are Diagnostic or Fix objects.")


__all__ = ["GROUP", "Plugin"]
