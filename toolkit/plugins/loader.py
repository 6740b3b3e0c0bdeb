"""Finding the installed plugins: every entry point of the ``toolkit.plugins`` group, once.

:func:`installed` loads each entry point on its own: one that fails to
import, is not a :class:`~toolkit.plugins.Plugin`, holds a bad declaration,
or gives a name another plugin gives too, becomes a :class:`Broken` entry
with one sentence, and the rest load. A procedure (per kind) or a ticket
backend named by two plugins is refused in both: which one would win would
depend on the order distributions happen to be found in. Everything comes out
sorted, so two runs on one machine list the same thing.

Hand-written rather than pluggy's ``load_setuptools_entrypoints``: that loop
lets the first plugin's import error escape and stops there, and our plugins
are data, not hooks (docs/plugins.md, "Why not pluggy").

This runs in ``toolkit share``'s start-up: it imports nothing beyond
``importlib.metadata`` and what the plugins themselves import.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from importlib import metadata

from toolkit.plugins.declaration import NAME, DeclarationError, Kind, Procedure
from toolkit.plugins.plugin import GROUP, Plugin
from toolkit.tickets.base import TicketPlugin

#: The entry-point names of the ticket-backend-only form before issue 16 (docs/plugins.md).
LEGACY_TICKETS = "tickets."
TICKET_BACKEND = "ticket backend"
#: A plugin's error text shown in a Broken reason at most this long.
_REASON = 200


@dataclass(frozen=True)
class Loaded:
    """A plugin that loaded, and where it came from."""

    plugin: Plugin
    entry_point: str  # "module:attribute"
    distribution: str | None  # "name version"; None for an entry point of no distribution
    deprecated: str = ""  # one sentence when it is registered in a form that goes away

    @property
    def origin(self) -> str:
        return _origin(self.entry_point, self.distribution)


@dataclass(frozen=True)
class Broken:
    """An entry point (or one name in it) that was refused, and why, in one sentence."""

    name: str  # the entry point's (= the plugin's) name
    origin: str  # "module:attribute (distribution version)"
    reason: str
    #: (what, name) when only one thing of a plugin that loaded was refused: ("fix", "x"),
    #: ("ticket backend", "x"); a legacy tickets.NAME entry point names its backend here too.
    refused: tuple[str, str] | None = None

    @property
    def ticket_backend(self) -> str:
        """The ticket backend this is about, when one is known ("" else)."""
        return self.refused[1] if self.refused and self.refused[0] == TICKET_BACKEND else ""


@dataclass(frozen=True)
class Installed:
    """Every plugin in the ``toolkit.plugins`` group: those that loaded, and the broken ones."""

    plugins: tuple[Loaded, ...] = ()
    broken: tuple[Broken, ...] = ()

    def procedures(self) -> list[tuple[Procedure, Loaded]]:
        """Every procedure that runs on this machine's platform, sorted by kind and name."""
        found = [
            (procedure, loaded)
            for loaded in self.plugins
            for procedure in loaded.plugin.procedures
            if procedure.runs_here()
        ]
        return sorted(found, key=lambda pair: (pair[0].kind.value, pair[0].name))

    def find(self, kind: Kind, name: str) -> tuple[Procedure, Loaded] | None:
        """The procedure ``kind`` ``name``, whatever its platforms (check ``runs_here()``)."""
        for loaded in self.plugins:
            for procedure in loaded.plugin.procedures:
                if procedure.kind is kind and procedure.name == name:
                    return procedure, loaded
        return None

    def ticket_backends(self) -> dict[str, tuple[TicketPlugin, Loaded]]:
        """Every ticket backend by name, sorted."""
        found = {
            b.name: (b, loaded) for loaded in self.plugins for b in loaded.plugin.ticket_backends
        }
        return dict(sorted(found.items()))


@functools.cache
def installed() -> Installed:
    """The installed plugins, loaded on the first call of this process."""
    return load(metadata.entry_points(group=GROUP))


def load(entry_points: Iterable[metadata.EntryPoint]) -> Installed:
    """Load ``entry_points``, each isolated from the others (:func:`installed`: cached)."""
    ordered = sorted(entry_points, key=lambda ep: (ep.name, _distribution(ep) or "", ep.value))
    loaded: list[Loaded] = []
    broken: list[Broken] = []
    for ep in ordered:
        outcome = _load_one(ep)
        if isinstance(outcome, Loaded):
            loaded.append(outcome)
        else:
            broken.append(outcome)
    loaded = _one_per_name(loaded, broken)
    loaded = _refuse_shared(loaded, broken)
    broken.sort(key=lambda b: (b.name, b.origin, b.reason))
    return Installed(tuple(loaded), tuple(broken))


def _distribution(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None
    return f"{dist.name} {dist.version}"


def _origin(value: str, distribution: str | None) -> str:
    return f"{value} ({distribution})" if distribution else value


def _load_one(ep: metadata.EntryPoint) -> Loaded | Broken:
    distribution = _distribution(ep)
    origin = _origin(ep.value, distribution)
    legacy = ep.name.startswith(LEGACY_TICKETS)
    backend = ep.name[len(LEGACY_TICKETS) :] if legacy else ""

    def broken(reason: str) -> Broken:
        return Broken(
            ep.name, origin, reason, refused=(TICKET_BACKEND, backend) if legacy else None
        )

    if not legacy and not NAME.fullmatch(ep.name):
        return broken("its entry point's name is not lower-case-with-dashes.")
    try:
        obj = ep.load()
    except DeclarationError as exc:
        return broken(f"a bad declaration: {_short(exc.message)}")
    except (Exception, SystemExit) as exc:  # a third party's failure must not stop the others
        return broken(f"it failed to import ({type(exc).__name__}: {_short(str(exc))}).")
    if legacy:
        return _legacy(ep, obj, backend, distribution) or broken(
            f"its object is not a TicketPlugin named {backend!r}."
        )
    if not isinstance(obj, Plugin):
        return broken(f"its object is a {type(obj).__name__}, not a toolkit.plugins.Plugin.")
    if obj.name != ep.name:
        return broken(f"its Plugin is named {obj.name!r}; the entry point must be named the same.")
    return Loaded(obj, ep.value, distribution)


def _legacy(
    ep: metadata.EntryPoint, obj: object, backend: str, distribution: str | None
) -> Loaded | None:
    """A ``tickets.NAME`` entry point of a bare TicketPlugin, wrapped (supported until 0.3)."""
    if not isinstance(obj, TicketPlugin) or obj.name != backend:
        return None
    try:
        plugin = Plugin(name=f"tickets-{backend}", version="0", ticket_backends=(obj,))
    except DeclarationError:
        return None
    note = (
        f"the entry point {ep.name} uses the old form; register a Plugin instead "
        "(docs/plugins.md): toolkit 0.3 will not load it."
    )
    return Loaded(plugin, ep.value, distribution, deprecated=note)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON else text[: _REASON - 3] + "..."


def _one_per_name(loaded: list[Loaded], broken: list[Broken]) -> list[Loaded]:
    """Refuse a plugin name registered twice (two distributions), in both."""
    by_name: dict[str, list[Loaded]] = defaultdict(list)
    for item in loaded:
        by_name[item.plugin.name].append(item)
    kept = []
    for items in by_name.values():
        if len(items) == 1:
            kept.append(items[0])
            continue
        for item in items:
            others = ", ".join(o.origin for o in items if o is not item)
            broken.append(
                Broken(item.plugin.name, item.origin, f"{others} has the same name; neither loads.")
            )
    return kept


def _refuse_shared(loaded: list[Loaded], broken: list[Broken]) -> list[Loaded]:
    """Drop a procedure (per kind) or ticket backend given by two plugins from both."""
    givers: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item in loaded:
        for procedure in item.plugin.procedures:
            givers[(procedure.kind.value, procedure.name)].append(item.plugin.name)
        for backend in item.plugin.ticket_backends:
            givers[(TICKET_BACKEND, backend.name)].append(item.plugin.name)
    shared = {key: names for key, names in givers.items() if len(names) > 1}
    if not shared:
        return loaded
    out = []
    for item in loaded:
        plugin = item.plugin
        for (what, name), names in sorted(shared.items()):
            if plugin.name in names:
                others = ", ".join(n for n in names if n != plugin.name)
                broken.append(
                    Broken(
                        plugin.name,
                        item.origin,
                        f"{what} {name!r} is also given by {others}; refused in both.",
                        refused=(what, name),
                    )
                )
        plugin = replace(
            plugin,
            procedures=tuple(p for p in plugin.procedures if (p.kind.value, p.name) not in shared),
            ticket_backends=tuple(
                b for b in plugin.ticket_backends if (TICKET_BACKEND, b.name) not in shared
            ),
        )
        out.append(replace(item, plugin=plugin))
    return out


__all__ = [
    "GROUP",
    "LEGACY_TICKETS",
    "TICKET_BACKEND",
    "Broken",
    "Installed",
    "Loaded",
    "installed",
    "load",
]
