"""What a plugin is: one object behind one entry point in the ``toolkit.plugins`` group.

A distribution registers it the same way whether it is first-party (plugins/)
or anyone else's::

    [project.entry-points."toolkit.plugins"]
    myplugin = "mypackage:plugin"

where ``mypackage.plugin`` is a :class:`Plugin`. docs/plugins.md is the guide.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.plugins.declaration import NAME, DeclarationError, Procedure
from toolkit.tickets.base import TicketPlugin

#: The entry-point group every plugin registers in.
GROUP = "toolkit.plugins"


@dataclass(frozen=True)
class Plugin:
    """A plugin: its name and version, and what it provides.

    ``procedures`` are diagnostics and fixes (declared as data, see
    :mod:`toolkit.plugins.declaration`); ``ticket_backends`` are where
    transcripts are attached (:class:`toolkit.tickets.base.TicketPlugin`).
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
        where = f"plugin {self.name}"
        if not isinstance(self.version, str) or not self.version or len(self.version) > 64:
            raise DeclarationError(f"{where}: version is a short string.")
        if not isinstance(self.summary, str) or len(self.summary) > 120:
            raise DeclarationError(f"{where}: summary is one line of at most 120 characters.")
        if not all(isinstance(p, Procedure) for p in self.procedures):
            raise DeclarationError(f"{where}: procedures are Diagnostic or Fix objects.")
        keys = [(p.kind, p.name) for p in self.procedures]
        if len(set(keys)) != len(keys):
            raise DeclarationError(f"{where}: two procedures of one kind have one name.")
        if self.ticket_backends:
            if not all(isinstance(b, TicketPlugin) for b in self.ticket_backends):
                raise DeclarationError(f"{where}: ticket_backends are TicketPlugin objects.")
            names = [b.name for b in self.ticket_backends]
            if len(set(names)) != len(names):
                raise DeclarationError(f"{where}: two ticket backends have one name.")


__all__ = ["GROUP", "Plugin"]
