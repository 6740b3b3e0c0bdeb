"""Objects behind the entry points of tests/unit/plugins/test_loader.py.

A name looked up through :func:`__getattr__` fails the way a plugin module
fails while it is imported (the loader sees both at ``EntryPoint.load()``).
"""

from __future__ import annotations

from toolkit.plugins import Diagnostic, Fix, Plugin
from toolkit.plugins.declaration import DeclarationError
from toolkit.tickets.local import LocalTickets
from toolkit.tickets.plugins import BackendConfig, TicketPlugin


def _make(config: BackendConfig) -> LocalTickets:
    return LocalTickets()


def backend(name: str) -> TicketPlugin:
    return TicketPlugin(name=name, summary=f"{name} tickets", make=_make, credential=None)


def diagnostic(name: str, platforms: tuple[str, ...] = ("linux",)) -> Diagnostic:
    return Diagnostic(name=name, summary=f"the {name}", platforms=platforms, run=[["true"]])


def fix(name: str) -> Fix:
    return Fix(name=name, summary=f"fix {name}", apply=[["true"]])


alpha = Plugin(
    name="alpha",
    version="1.0",
    procedures=(
        diagnostic("disk"),
        diagnostic("uptime"),
        fix("disk"),  # a fix may share a diagnostic's name
        diagnostic("registry", platforms=("windows",)),
    ),
    ticket_backends=(backend("shared-desk"), backend("alpha-desk")),
)
beta = Plugin(
    name="beta",
    version="2",
    procedures=(diagnostic("uptime"), diagnostic("memory")),
    ticket_backends=(backend("shared-desk"),),
)
alpha_again = Plugin(name="alpha", version="9")
not_a_plugin = {"name": "gamma"}
legacy = backend("old-desk")


def __getattr__(name: str) -> object:
    if name == "bad_declaration":
        raise DeclarationError("procedure 'x': apply: a command's first word is literal.")
    if name == "exits":
        raise SystemExit(3)
    if name == "crashes":
        raise RuntimeError("boom\nwith a second line")
    raise AttributeError(name)
