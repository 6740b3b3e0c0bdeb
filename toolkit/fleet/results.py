"""What one host's session came to, and what a whole fleet run came to: plain records.

A :class:`HostResult` is what ``run_one(host)`` returns to the runner
(toolkit.fleet.runner); the CLI renders it (recap, ``--json``, the retry file)
and the signed run summary lists it. Nothing here prints.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import ExitCode
from toolkit.session.fix_run import FixStatus
from toolkit.session.results import worse


class HostStatus(enum.StrEnum):
    """How one host ended (docs/fleet.md, "Results"): a fix's own results, then the ways a
    host can end before or around its fix."""

    OK = "ok"
    CHANGED = "changed"
    WOULD_CHANGE = "would change"
    FAILED = "failed"
    NOT_PREVIEWABLE = "not previewable"
    DECLINED = "declined"
    REFUSED = "refused"  # the agent's policy or scope refused a step
    UNREACHABLE = "unreachable"
    CONSENT_REFUSED = "consent refused"  # the agent refused the session (a grant's reason)
    TIMED_OUT = "timed out"  # the host did not end within --timeout
    INTERRUPTED = "interrupted"  # Ctrl-C: stopped after its step, or never started

    @classmethod
    def of(cls, status: FixStatus) -> HostStatus:
        return cls(status.value)

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT[self]

    def succeeded(self, *, check_only: bool) -> bool:
        """Whether a host that ended so needs no second run (it stays out of the retry file)."""
        return self in (HostStatus.OK, HostStatus.CHANGED) or (
            check_only and self is HostStatus.WOULD_CHANGE
        )


_EXIT = {
    **{HostStatus.of(s): s.exit_code for s in FixStatus},
    HostStatus.CONSENT_REFUSED: ExitCode.REFUSED,
    # No answer in time is what a network error looks like to a script (and to Ansible).
    HostStatus.TIMED_OUT: ExitCode.NETWORK,
    HostStatus.INTERRUPTED: ExitCode.INTERRUPTED,
}


@dataclass(frozen=True)
class HostResult:
    """One host's end: its status, why, its steps, its output, its transcript."""

    host: str  # the inventory name
    status: HostStatus
    message: str = ""  # one sentence: why this status (printable)
    #: One JSON-ready record per step that ran, in order (each has at least "purpose").
    steps: tuple[Mapping[str, Any], ...] = ()
    #: What a person reads about this host (printable lines), printed whole when it ends.
    output: tuple[str, ...] = ()
    #: The exit code this host earned; default: its status's. A transcript that could
    #: not be written, or a ticket system that failed, may make it worse.
    exit_code: int | None = None
    reason: str | None = None  # a consent refusal's reason (a grant's: "expired", ...)
    session: str | None = None
    transcript: Path | None = None
    transcript_sha256: str | None = None
    grant: str | None = None  # the grant's id, when one was used
    #: Which use of the grant this host's agent counted (its ledger's number), once consent
    #: passed: what an auditor matches against the agent's `toolkit grant history`.
    grant_use: int | None = None
    procedure_sha256: str | None = None  # the declaration the agent ran, when it said
    seconds: float = 0.0  # how long the host took (set by the runner)

    @property
    def code(self) -> ExitCode:
        return ExitCode(self.exit_code) if self.exit_code is not None else self.status.exit_code

    def to_json(self) -> dict[str, Any]:
        """The host's line for ``--json`` (docs/fleet.md, "JSON")."""
        return {
            "type": "host",
            "host": self.host,
            "result": self.status.value,
            "message": self.message,
            "reason": self.reason,
            "steps": [s.get("purpose") for s in self.steps],
            "exit_code": int(self.code),
            "session": self.session,
            "transcript": str(self.transcript) if self.transcript is not None else None,
            "transcript_sha256": self.transcript_sha256,
            "grant": self.grant,
            "grant_use": self.grant_use,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class FleetResult:
    """A whole run: every selected host's result, in inventory order."""

    results: tuple[HostResult, ...]
    interrupted: bool = False  # Ctrl-C was pressed
    check_only: bool = False
    counts: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls, results: Sequence[HostResult], *, interrupted: bool, check_only: bool = False
    ) -> FleetResult:
        counts = Counter(r.status.value for r in results)
        ordered = {s.value: counts[s.value] for s in HostStatus if counts[s.value]}
        return cls(tuple(results), interrupted, check_only, ordered)

    @property
    def exit_code(self) -> ExitCode:
        """The worst host's, as a single run ranks them; Ctrl-C's 130 whatever else."""
        if self.interrupted:
            return ExitCode.INTERRUPTED
        worst = ExitCode.OK
        for result in self.results:
            worst = worse(worst, result.code)
        return worst

    def to_retry(self) -> list[str]:
        """The hosts to run again: those that did not end ok or changed (or would change,
        with --check)."""
        return [r.host for r in self.results if not r.status.succeeded(check_only=self.check_only)]


__all__ = ["FleetResult", "HostResult", "HostStatus"]
