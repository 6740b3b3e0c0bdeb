"""Named diagnostics and fixes: each one declares its exact commands.

The agent runs a procedure only from its own catalogue (the customer's
installed toolkit), never from commands the technician sends, and shows a
fix's commands to the customer before asking. The built-in set is small; the
plugin issue generalises :class:`Procedure` to the ``toolkit.plugins`` entry
points with this same shape.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from toolkit.errors import PolicyRefused

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
HOME = "{home}"


class Kind(enum.StrEnum):
    DIAGNOSTIC = "diagnostic"
    FIX = "fix"

    @property
    def scope(self) -> str:
        return "diagnostics" if self is Kind.DIAGNOSTIC else "fixes"


@dataclass(frozen=True)
class Procedure:
    """A diagnostic or a fix: a name, a one-line summary, the argv lists it runs in order.

    ``{home}`` in an argument stands for the agent user's home directory;
    nothing else is substituted, and no shell ever sees the commands.
    """

    name: str
    kind: Kind
    summary: str
    commands: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"procedure name {self.name!r} is not lower-case-with-dashes")
        if not self.commands or not all(self.commands):
            raise ValueError(f"procedure {self.name} must run at least one non-empty command")

    def resolved(self, home: str) -> tuple[tuple[str, ...], ...]:
        """The commands with ``{home}`` replaced: exactly what runs and what the customer sees."""
        return tuple(tuple(arg.replace(HOME, home) for arg in argv) for argv in self.commands)

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "summary": self.summary,
            "commands": [list(argv) for argv in self.commands],
        }


def _d(name: str, summary: str, *commands: tuple[str, ...]) -> Procedure:
    return Procedure(name, Kind.DIAGNOSTIC, summary, commands)


def _f(name: str, summary: str, *commands: tuple[str, ...]) -> Procedure:
    return Procedure(name, Kind.FIX, summary, commands)


BUILTIN: tuple[Procedure, ...] = (
    _d(
        "system",
        "Kernel, uptime, memory and disk space",
        ("uname", "-a"),
        ("uptime",),
        ("free", "-m"),
        ("df", "-h"),
    ),
    _d("disk", "Disk space and inodes per file system", ("df", "-h"), ("df", "-i")),
    _d("network", "Addresses and routes", ("ip", "-brief", "address"), ("ip", "route")),
    _d("services", "systemd units that failed", ("systemctl", "--failed", "--no-pager")),
    _f(
        "clear-thumbnails",
        "Delete the desktop's thumbnail cache (it is rebuilt on demand)",
        ("rm", "-rf", "--", "{home}/.cache/thumbnails"),
    ),
    _f("flush-dns", "Flush systemd-resolved's DNS cache", ("resolvectl", "flush-caches")),
)


class Catalogue:
    """The procedures one agent offers, by kind and name."""

    def __init__(self, procedures: Iterable[Procedure] = BUILTIN) -> None:
        self._by_key: dict[tuple[Kind, str], Procedure] = {}
        for procedure in procedures:
            key = (procedure.kind, procedure.name)
            if key in self._by_key:
                raise ValueError(f"two {procedure.kind.scope} are named {procedure.name}")
            self._by_key[key] = procedure

    def get(self, kind: Kind, name: str) -> Procedure:
        procedure = self._by_key.get((kind, name))
        if procedure is None:
            shown = name if _NAME.match(name) else repr(name[:64])
            raise PolicyRefused(
                f"refused: no {kind.value} named {shown} on this machine",
                hint=f"`help` lists the {kind.value}s the agent offers.",
            )
        return procedure

    def names(self, kind: Kind) -> list[str]:
        return sorted(name for k, name in self._by_key if k is kind)

    def describe(self) -> dict[str, dict[str, dict[str, object]]]:
        """``{"diagnostics": {name: ...}, "fixes": {name: ...}}`` for the hello reply."""
        return {
            kind.scope: {name: self._by_key[(kind, name)].describe() for name in self.names(kind)}
            for kind in Kind
        }


__all__ = ["BUILTIN", "Catalogue", "Kind", "Procedure"]
