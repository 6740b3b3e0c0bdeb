"""One known fix, run the scripted way: check, plan, apply, verify, check again.

:func:`run_fix` drives a :class:`~toolkit.session.technician.TechnicianSession`
through one :class:`~toolkit.plugins.Fix`, as Ansible's ``--check`` and
idempotence runs do, with toolkit's consent on top: every step is a ``fix``
request with its ``step`` (docs/protocol.md), sent through
:meth:`TechnicianSession.execute` so that both transcripts record it like any
other operation, and the agent, not this module, decides what may run (in a
diagnostics-only session it refuses ``apply`` and ``rollback`` whatever is
asked). It never prints: what happens is told to a :class:`FixProgress` and
returned as a :class:`FixResult`.

Which declaration: the agent's hello catalogue says which fixes the customer's
machine has installed, with their SHA-256. The technician's own declaration
(from their installed plugins) decides with its plugin's ``decide`` only when
the agent runs that very declaration (same SHA-256); when the agent has its own
version, the agent's declaration is used and its check is judged by the
exit-status rule (:meth:`Fix.decision`), and the result says so. A fix the
agent does not have is brought: its whole declaration rides with each request,
and the customer approves it before its first step.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from toolkit.errors import ExitCode, ToolkitError
from toolkit.plugins.declaration import (
    Decision,
    Fix,
    ParameterError,
    Procedure,
    Step,
    StepOutput,
)
from toolkit.session.commands import Command
from toolkit.session.procedures import step_outputs
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.session.results import OperationResult
    from toolkit.session.technician import TechnicianSession
    from toolkit.session.workflow import Line

#: Shown for ``{home}`` in a plan when the agent does not say what its home is.
UNKNOWN_HOME = "~"
#: The source of a run's steps, as a batch file names its lines.
SOURCE = "toolkit run"


class FixStatus(enum.StrEnum):
    """How a run of one fix ended (docs/run.md, "Results")."""

    OK = "ok"  # not needed: nothing was changed
    CHANGED = "changed"  # applied, verified, and the check now passes
    WOULD_CHANGE = "would change"  # --check: needed, the plan shown, nothing applied
    FAILED = "failed"  # a step failed, or the check still says needed after apply
    NOT_PREVIEWABLE = "not previewable"  # --check of a fix without a check
    DECLINED = "declined"  # the customer said no when asked
    REFUSED = "refused"  # the agent's policy or scope refused, nobody was asked
    UNREACHABLE = "unreachable"  # no session, or the connection went away

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT[self]


_EXIT = {
    FixStatus.OK: ExitCode.OK,
    FixStatus.CHANGED: ExitCode.OK,
    FixStatus.WOULD_CHANGE: ExitCode.OK,  # as ansible --check: a preview is a success
    FixStatus.FAILED: ExitCode.FAILED,
    FixStatus.NOT_PREVIEWABLE: ExitCode.FAILED,
    FixStatus.DECLINED: ExitCode.REFUSED,
    FixStatus.REFUSED: ExitCode.REFUSED,
    FixStatus.UNREACHABLE: ExitCode.NETWORK,
}


class Purpose(enum.StrEnum):
    """Why a step ran: the protocol step, and the second check that proves idempotence."""

    CHECK = "check"
    APPLY = "apply"
    VERIFY = "verify"
    RECHECK = "recheck"
    ROLLBACK = "rollback"

    @property
    def step(self) -> Step:
        return Step.CHECK if self is Purpose.RECHECK else Step(self.value)


class DecidedBy(enum.StrEnum):
    PLUGIN = "plugin"  # the technician's plugin's decide, on the same declaration
    EXIT_STATUS = "exit status"  # Fix.decision's rule: every check command exits 0


@dataclass(frozen=True)
class StepRun:
    """One step as it ran: the technician's result of its ``fix`` request."""

    purpose: Purpose
    result: OperationResult
    outputs: tuple[StepOutput, ...]

    @property
    def step(self) -> Step:
        return self.purpose.step


@dataclass(frozen=True)
class Plan:
    """What apply would do: its commands as the agent resolves them, and the check's diff."""

    apply: tuple[tuple[str, ...], ...]
    rollback: tuple[tuple[str, ...], ...]
    diff: str
    reason: str


@dataclass(frozen=True)
class Chosen:
    """The declaration a run uses, where the agent gets it, and who decides."""

    fix: Fix
    brought: bool  # the agent does not have it: its declaration is sent
    decided_by: DecidedBy
    note: str = ""  # why the plugin does not decide, when it does not

    @property
    def declaration(self) -> dict[str, Any] | None:
        return self.fix.to_dict() if self.brought else None


@dataclass(frozen=True)
class FixResult:
    """How one run of a fix ended, with every step it took."""

    name: str
    status: FixStatus
    message: str  # one sentence: why this status
    steps: tuple[StepRun, ...] = ()
    plan: Plan | None = None
    check_only: bool = False
    chosen: Chosen | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    #: Why the session ended under the run (the customer ended it, the connection was lost).
    ended: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        return self.status.exit_code

    @property
    def procedure(self) -> dict[str, Any] | None:
        """What the agent said it ran (name, version, source, sha256), from its last result."""
        for run in reversed(self.steps):
            reported = run.result.result.get("procedure")
            if isinstance(reported, dict):
                return reported
        return None


class FixProgress(Protocol):
    """Told what happens as it happens (the CLI draws it; tests record it)."""

    def step(self, run: StepRun) -> None:
        """A step ran (or was refused)."""
        ...

    def plan(self, plan: Plan, chosen: Chosen) -> None:
        """The check says needed: what apply would do, before it is asked for."""
        ...

    def asking_customer(self, asking: str) -> None:
        """The agent asks the customer about the step running (toolkit.session.workflow)."""
        ...


class _Quiet:
    def step(self, run: StepRun) -> None:
        pass

    def plan(self, plan: Plan, chosen: Chosen) -> None:
        pass

    def asking_customer(self, asking: str) -> None:
        pass


class _Commands:
    """The workflow's CommandsUI for :func:`~toolkit.session.workflow.run_line`: a step's
    result is told as a :class:`StepRun` instead; only the customer's question passes."""

    def __init__(self, progress: FixProgress) -> None:
        self._progress = progress

    def starting(self, line: Line) -> None:
        pass

    def asking_customer(self, asking: str) -> None:
        self._progress.asking_customer(asking)

    def output(self, stream: int, data: bytes) -> None:
        pass

    def result(self, result: OperationResult, line: Line | None) -> None:
        pass

    def session_lost(self, message: str) -> None:
        pass


def choose(name: str, mine: Fix | None, info: Mapping[str, Any]) -> Chosen:
    """Which declaration to run, from the technician's (``mine``) and the agent's hello.

    ToolkitError (a refusal) when neither side has the fix, or the agent's is unreadable.
    """
    theirs = _catalogue_entry(info, name)
    if theirs is None:
        if mine is None:
            raise _Refused(
                f"refused: no fix named {printable(name, 64)} on the customer's machine, "
                "and none among your plugins to bring"
            )
        return Chosen(mine, brought=True, decided_by=_decider(mine))
    declared = {k: v for k, v in theirs.items() if k not in ("sha256", "source")}
    try:
        agents = Procedure.from_dict(declared)
    except ToolkitError as exc:
        raise _Refused(
            f"refused: the customer's machine declares the fix {printable(name, 64)} in a way "
            f"this toolkit cannot read ({exc.message})"
        ) from None
    if not isinstance(agents, Fix):
        raise _Refused(f"refused: {printable(name, 64)} on the customer's machine is not a fix")
    if mine is not None and mine.sha256 == agents.sha256:
        return Chosen(mine, brought=False, decided_by=_decider(mine))
    note = ""
    if mine is not None and mine.decide is not None:
        # Your plugin reads the output of its own check; the exit-status rule may say the
        # opposite of what this one's output means. Guessing could report a false "ok".
        note = (
            f"the customer's machine has its own {agents.name} (version {agents.version}, "
            f"yours is {mine.version}), and your plugin decides only for its own version"
        )
    return Chosen(agents, brought=False, decided_by=DecidedBy.EXIT_STATUS, note=printable(note))


def _decider(fix: Fix) -> DecidedBy:
    return DecidedBy.PLUGIN if fix.decide is not None else DecidedBy.EXIT_STATUS


def _catalogue_entry(info: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    procedures = info.get("procedures")
    fixes = procedures.get("fixes") if isinstance(procedures, dict) else None
    entry = fixes.get(name) if isinstance(fixes, dict) else None
    return entry if isinstance(entry, dict) else None


class _Refused(ToolkitError):
    """The run cannot start: said as the result's message, status refused."""


async def run_fix(
    session: TechnicianSession,
    name: str,
    mine: Fix | None,
    params: Mapping[str, str],
    *,
    check_only: bool = False,
    progress: FixProgress | None = None,
) -> FixResult:
    """Run the fix ``name`` once on the session's machine; see the module's docstring.

    ``mine`` is the technician's own declaration (None when no plugin of theirs has
    it); ``params`` the ``-p`` values as given (checked again here, against the
    declaration actually used). Never raises for what the agent does: a refusal, a
    failure, the session's end and a lost connection are results.
    """
    return await _Run(session, name, params, check_only, progress or _Quiet()).go(mine)


class _Run:
    def __init__(
        self,
        session: TechnicianSession,
        name: str,
        params: Mapping[str, str],
        check_only: bool,
        progress: FixProgress,
    ) -> None:
        self.session = session
        self.name = name
        self.given = dict(params)
        self.check_only = check_only
        self.progress = progress
        self.steps: list[StepRun] = []
        self.chosen: Chosen | None = None
        self.values: dict[str, str] = {}
        self.plan: Plan | None = None

    def result(self, status: FixStatus, message: str, ended: str | None = None) -> FixResult:
        return FixResult(
            self.name,
            status,
            message,
            tuple(self.steps),
            self.plan,
            self.check_only,
            self.chosen,
            dict(self.values),
            ended,
        )

    async def go(self, mine: Fix | None) -> FixResult:
        from toolkit.session.client import ConnectionLost, SessionEnded

        try:
            self.chosen = choose(self.name, mine, self.session.info)
            self.values = self.chosen.fix.bind(self.given)
        except (_Refused, ParameterError) as exc:
            return self.result(FixStatus.REFUSED, exc.message)
        if self.chosen.note:
            return self.result(
                FixStatus.FAILED,
                f"cannot tell whether {printable(self.name, 64)} is needed: {self.chosen.note}; "
                "install the same version on both sides, or look with toolkit connect "
                f"(fix {printable(self.name, 64)} --step check)",
            )
        try:
            return await self._steps(self.chosen.fix)
        except SessionEnded as exc:
            return self.result(FixStatus.REFUSED, exc.message, ended=exc.message)
        except ConnectionLost as exc:
            return self.result(FixStatus.UNREACHABLE, exc.message, ended=exc.message)

    async def _steps(self, fix: Fix) -> FixResult:
        if not fix.previewable:
            if self.check_only:
                return self.result(
                    FixStatus.NOT_PREVIEWABLE,
                    f"{fix.name} has no check, so --check cannot tell whether it is needed",
                )
            self._show_plan(fix, Decision(True, reason="it has no check: it always applies"))
        else:
            decision = await self._check(Purpose.CHECK)
            if isinstance(decision, FixResult):
                return decision
            if not decision.needed:
                return self.result(FixStatus.OK, _reason("not needed", decision))
            self._show_plan(fix, decision)
            if self.check_only:
                return self.result(FixStatus.WOULD_CHANGE, _reason("needed", decision))
        applied = await self._step(Purpose.APPLY)
        if applied.status != "ok":
            return await self._after_failure(fix, applied, "apply")
        if fix.verify:
            verified = await self._step(Purpose.VERIFY)
            if verified.status != "ok":
                return await self._after_failure(fix, verified, "verify")
        if not fix.previewable:
            return self.result(FixStatus.CHANGED, "applied and verified (it has no check to rerun)")
        decision = await self._check(Purpose.RECHECK)
        if isinstance(decision, FixResult):
            return decision
        if decision.needed:
            return self.result(
                FixStatus.FAILED,
                _reason("applied, but the check still says it is needed", decision),
            )
        return self.result(FixStatus.CHANGED, "applied; the check now passes")

    def _show_plan(self, fix: Fix, decision: Decision) -> None:
        assert self.chosen is not None
        home = self.session.info.get("home")
        home = home if isinstance(home, str) and home.startswith("/") else UNKNOWN_HOME
        self.plan = Plan(
            fix.resolve(Step.APPLY, self.values, home),
            fix.resolve(Step.ROLLBACK, self.values, home),
            decision.diff,
            decision.reason,
        )
        self.progress.plan(self.plan, self.chosen)

    async def _check(self, purpose: Purpose) -> Decision | FixResult:
        """The check's decision, or the result that ends the run (refused, could not run)."""
        assert self.chosen is not None
        result = await self._step(purpose)
        if result.status == "refused" or result.error is not None:
            return self._refused_or_failed(result, purpose)
        try:
            return self.chosen.fix.decision(self.steps[-1].outputs, self.values)
        except ValueError as exc:
            return self.result(FixStatus.FAILED, str(exc))
        except Exception as exc:  # a plugin's decide is third-party code: a bug is a failure
            return self.result(
                FixStatus.FAILED,
                printable(f"the plugin could not decide from the check's output: {exc!r}", 300),
            )

    async def _after_failure(self, fix: Fix, failed: OperationResult, what: str) -> FixResult:
        if failed.status == "refused" or failed.error is not None:
            return self._refused_or_failed(failed, Purpose(what))
        message = f"{what} failed (exit {failed.exit_status})"
        if not fix.rollback:
            return self.result(FixStatus.FAILED, f"{message}; {fix.name} has no rollback")
        undone = await self._step(Purpose.ROLLBACK)
        if undone.status == "ok":
            return self.result(FixStatus.FAILED, f"{message}; rolled back")
        return self.result(FixStatus.FAILED, f"{message}; the rollback failed too")

    def _refused_or_failed(self, result: OperationResult, purpose: Purpose) -> FixResult:
        message = printable(result.message or result.error or "failed", 300)
        if result.status != "refused":
            return self.result(FixStatus.FAILED, f"{purpose.value}: {message}")
        answer = (result.approval or {}).get("answer")
        status = FixStatus.DECLINED if answer == "declined" else FixStatus.REFUSED
        return self.result(status, message)

    async def _step(self, purpose: Purpose) -> OperationResult:
        """One step, through the workflow's path for any command (recorded, the customer's
        question told); raises SessionEnded or ConnectionLost when the session is gone."""
        from toolkit.session.workflow import Line, run_line

        assert self.chosen is not None
        command = fix_command(
            self.name, purpose.step, self.given, declaration=self.chosen.declaration
        )
        line = Line(SOURCE, len(self.steps) + 1, command)
        result = await run_line(self.session, line, _Commands(self.progress), stream=False)
        run = StepRun(purpose, result, tuple(step_outputs(result)))
        self.steps.append(run)
        self.progress.step(run)
        return result


def _reason(what: str, decision: Decision) -> str:
    reason = printable(decision.reason, 200)
    return f"{what}: {reason}" if reason else what


def fix_command(
    name: str,
    step: Step,
    params: Mapping[str, str],
    *,
    declaration: dict[str, Any] | None = None,
) -> Command:
    """The ``fix`` request for one step, as the prompt's ``fix NAME --step S -p K=V`` would be."""
    words = [name, "--step", step.value]
    for key, value in params.items():
        words += ["-p", f"{key}={value}"]
    args: dict[str, Any] = {"name": name, "step": step.value}
    if params:
        args["params"] = dict(params)
    if declaration is not None:
        args["declaration"] = declaration
    return Command(shlex.join(["fix", *words]), "fix", tuple(words), args)


__all__ = [
    "Chosen",
    "DecidedBy",
    "FixProgress",
    "FixResult",
    "FixStatus",
    "Plan",
    "Purpose",
    "StepRun",
    "choose",
    "fix_command",
    "run_fix",
]
