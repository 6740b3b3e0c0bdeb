"""STAND-IN for helper B's loader (issue 16): the contract's names, just enough to run.

The lead merges B's toolkit/plugins/loader.py over this file (take B's version).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points

from toolkit.plugins.declaration import Kind, Procedure
from toolkit.plugins.plugin import GROUP, Plugin


@dataclass(frozen=True)
class Loaded:
    plugin: Plugin
    entry_point: str
    distribution: str | None


@dataclass(frozen=True)
class Broken:
    name: str
    origin: str
    reason: str


@dataclass(frozen=True)
class Installed:
    plugins: tuple[Loaded, ...] = ()
    broken: tuple[Broken, ...] = field(default=())

    def procedures(self) -> list[tuple[Procedure, Loaded]]:
        return [
            (p, loaded)
            for loaded in self.plugins
            for p in loaded.plugin.procedures
            if p.runs_here()
        ]

    def find(self, kind: Kind, name: str) -> tuple[Procedure, Loaded] | None:
        return next(
            ((p, lo) for p, lo in self.procedures() if p.kind is kind and p.name == name), None
        )


@cache
def installed() -> Installed:
    loaded, broken = [], []
    for ep in entry_points(group=GROUP):
        try:
            value = ep.load()
        except Exception as exc:  # a broken plugin is listed, never raised
            broken.append(Broken(ep.name, ep.value, str(exc)))
            continue
        if isinstance(value, Plugin):
            loaded.append(Loaded(value, ep.value, ep.dist.name if ep.dist else None))
    return Installed(tuple(loaded), tuple(broken))


__all__ = ["Broken", "Installed", "Loaded", "installed"]
