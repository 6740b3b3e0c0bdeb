"""Which named diagnostics and fixes the agent runs: ``[procedures] allow``/``deny``.

Names are matched as shell-style globs (:func:`fnmatch.fnmatchcase`): ``*``,
``?`` and ``[...]``, nothing else. Deny beats allow; an empty allow list
allows nothing. The same rule applies to a procedure installed on this
machine and to one a technician brings.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from toolkit.errors import PolicyRefused

POLICY_HINT = "The customer's agent policy ([procedures] in agent.toml) decides which run."


@dataclass(frozen=True)
class ProcedureRules:
    """``[procedures]``: glob patterns of the names that may run, and of those that never do."""

    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    #: Whether a technician may bring one this machine does not have. Names are the
    #: technician's to choose for what they bring, so only this can refuse them all.
    brought: bool = True

    def allows(self, name: str) -> bool:
        if any(fnmatchcase(name, pattern) for pattern in self.deny):
            return False
        return any(fnmatchcase(name, pattern) for pattern in self.allow)

    def check(self, kind: str, name: str) -> None:
        """Return if ``name`` may run; PolicyRefused naming it otherwise."""
        if not self.allows(name):
            raise PolicyRefused(
                f"refused: the agent's policy does not allow the {kind} {name}",
                hint=POLICY_HINT,
            )

    def check_brought(self, kind: str, name: str) -> None:
        """Return if a brought ``name`` may run (the customer is still asked)."""
        if not self.brought:
            raise PolicyRefused(
                f"refused: the agent's policy runs only the procedures installed on this "
                f"machine, and the {kind} {name} is not one of them",
                hint=POLICY_HINT,
            )


__all__ = ["ProcedureRules"]
