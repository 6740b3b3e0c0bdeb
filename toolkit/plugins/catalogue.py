"""The agent's catalogue: the diagnostics and fixes installed on this machine.

The agent runs a procedure from its own catalogue (plugins installed on the
customer's machine, found through the ``toolkit.plugins`` entry points), or
one the technician brings whole (a declaration the customer approves). This
module looks both up by kind and name and applies what the agent decides
about them: which platform they are for, and the policy's ``[procedures]``
allow/deny, the same for installed and brought ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from toolkit.errors import PolicyRefused
from toolkit.plugins.declaration import NAME, Kind, Procedure, current_platform
from toolkit.policy.procedures import ProcedureRules

Source = Literal["installed", "brought"]


@dataclass(frozen=True)
class Chosen:
    """The procedure a request runs, and where it came from."""

    procedure: Procedure
    source: Source

    def about(self) -> dict[str, str]:
        """``{name, version, source, sha256}``: how results and both transcripts name it."""
        p = self.procedure
        return {"name": p.name, "version": p.version, "source": self.source, "sha256": p.sha256}


def _shown(name: str) -> str:
    return name if NAME.fullmatch(name) else repr(name[:64])


class Catalogue:
    """The procedures installed here, by kind and name (each kind's names are unique)."""

    def __init__(
        self, procedures: Iterable[Procedure] = (), *, platform: str | None = None
    ) -> None:
        self.platform = platform or current_platform()
        self._by_key: dict[tuple[Kind, str], Procedure] = {}
        for procedure in procedures:
            key = (procedure.kind, procedure.name)
            if key in self._by_key:
                raise ValueError(f"two {procedure.kind.scope} are named {procedure.name}")
            self._by_key[key] = procedure

    @classmethod
    def installed(cls) -> Catalogue:
        """Every procedure of the plugins installed on this machine (a broken one is left out)."""
        from toolkit.plugins.loader import installed

        return cls(procedure for procedure, _ in installed().procedures())

    def find(self, kind: Kind, name: str) -> Procedure | None:
        return self._by_key.get((kind, name))

    def choose(
        self, kind: Kind, name: str, rules: ProcedureRules, declaration: Any = None
    ) -> Chosen:
        """What ``name`` runs: the installed one, or the ``declaration`` brought (parsed).

        PolicyRefused when there is none, when the policy does not allow the name,
        when it is for another platform, or when a brought one differs from the one
        installed under its name. A malformed declaration is a DeclarationError.
        """
        installed = self.find(kind, name)
        chosen: Chosen
        if declaration is None:
            if installed is None:
                raise PolicyRefused(
                    f"refused: no {kind.value} named {_shown(name)} on this machine",
                    hint=f"`help` lists the {kind.value}s the agent offers.",
                )
            chosen = Chosen(installed, "installed")
        else:
            brought = Procedure.from_dict(declaration)
            if brought.kind is not kind or brought.name != name:
                raise PolicyRefused(
                    f"refused: the declaration sent is the {brought.kind.value} {brought.name}, "
                    f"not the {kind.value} {_shown(name)}"
                )
            if installed is None:
                rules.check_brought(kind.value, name)
                chosen = Chosen(brought, "brought")
            elif installed.sha256 == brought.sha256:
                chosen = Chosen(installed, "installed")
            else:
                raise PolicyRefused(
                    f"refused: this machine has its own {name} (version {installed.version}); "
                    "the one sent differs from it",
                    hint="Run the installed one (send no declaration), or give yours another name.",
                )
        rules.check(kind.value, name)
        if not chosen.procedure.runs_here(self.platform):
            platforms = ", ".join(chosen.procedure.platforms)
            raise PolicyRefused(
                f"refused: the {kind.value} {name} is for {platforms}, not {self.platform}"
            )
        return chosen

    def names(self, kind: Kind, rules: ProcedureRules | None = None) -> list[str]:
        """The names of ``kind`` that run here (and that ``rules`` allow, if given)."""
        return sorted(
            name
            for (k, name), procedure in self._by_key.items()
            if k is kind
            and procedure.runs_here(self.platform)
            and (rules is None or rules.allows(name))
        )

    def describe(self, rules: ProcedureRules) -> dict[str, dict[str, Mapping[str, Any]]]:
        """``{"diagnostics": {name: ...}, "fixes": {name: ...}}`` for the hello reply:
        each runnable, allowed procedure's declaration with its sha256 and source."""
        return {
            kind.scope: {
                name: {
                    **self._by_key[(kind, name)].to_dict(),
                    "sha256": self._by_key[(kind, name)].sha256,
                    "source": "installed",
                }
                for name in self.names(kind, rules)
            }
            for kind in Kind
        }


__all__ = ["Catalogue", "Chosen", "Source"]
