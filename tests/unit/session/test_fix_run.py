"""run_fix's order of steps and its results, against a recording stand-in for the session.

The stand-in answers each ``fix`` request as the agent would from a script
(exit statuses per step, or a refusal); tests/integration/test_run_fix.py
runs the same flows against a real agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest

from toolkit.errors import ExitCode, UsageError
from toolkit.plugins import Decision, Fix, Parameter, StepOutput
from toolkit.session.client import ConnectionLost, SessionEnded
from toolkit.session.commands import Command, add_param
from toolkit.session.fix_run import (
    DecidedBy,
    FixResult,
    FixStatus,
    Plan,
    Purpose,
    StepRun,
    choose,
    fix_command,
    run_fix,
)
from toolkit.session.procedures import step_outputs
from toolkit.session.results import OperationResult as Result
from toolkit.session.results import Status
from toolkit.session.technician import TechnicianSession

HOME = "/home/customer"


def _decide(outputs: Sequence[StepOutput], values: Mapping[str, str]) -> Decision:
    needed = b"stale" in outputs[0].stdout
    return Decision(needed, diff=f"- stale {values['unit']}\n+ fresh", reason="the plugin says")


def make_fix(**changes: Any) -> Fix:
    fields: dict[str, Any] = {
        "name": "restart-thing",
        "summary": "Restart a thing",
        "version": "1.0",
        "parameters": (Parameter("unit", pattern=r"[a-z]+\.service"),),
        "check": [["systemctl", "is-active", "{unit}"]],
        "apply": [["systemctl", "restart", "{unit}"], ["touch", "{home}/restarted"]],
        "verify": [["systemctl", "is-active", "{unit}"]],
        "rollback": [["systemctl", "stop", "{unit}"]],
    }
    fields.update(changes)
    return Fix(**fields)


def entry(fix: Fix) -> dict[str, Any]:
    """The agent's hello entry for an installed fix (docs/protocol.md)."""
    return {**fix.to_dict(), "sha256": fix.sha256, "source": "installed"}


@dataclass
class Script:
    """What the stand-in agent does per purpose: exit statuses, stdout, or a refusal."""

    exits: dict[str, list[int]] = field(default_factory=dict)
    stdout: dict[str, bytes] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)  # step -> approval answer or ""


class FakeSession:
    """Answers fix requests from a :class:`Script`; records every command it got."""

    def __init__(self, script: Script, catalogue: dict[str, Any] | None = None) -> None:
        self.script = script
        self.info: dict[str, Any] = {"home": HOME, "procedures": {"fixes": catalogue or {}}}
        self.commands: list[Command] = []
        self.checks = 0
        self.raises: BaseException | None = None
        self.client = SimpleNamespace(on_notice=None)  # where the workflow hears notices

    async def execute(self, command: Command, on_data: object = None) -> Result:
        self.commands.append(command)
        if self.raises is not None:
            raise self.raises
        step = command.args["step"]
        key = step
        if step == "check":
            self.checks += 1
            key = "check" if self.checks == 1 else "recheck"
        if key in self.script.refuse:
            answer = self.script.refuse[key]
            return Result(
                command.text,
                "fix",
                Status.REFUSED,
                error="refused",
                message=f"refused: {answer or 'out of scope'}",
                approval={"answer": answer} if answer else None,
            )
        exits = self.script.exits.get(key, [0])
        out = self.script.stdout.get(key, b"")
        steps = [
            {"argv": ["cmd", str(i)], "exit_status": s, "stdout_bytes": len(out) if i == 0 else 0}
            for i, s in enumerate(exits)
        ]
        status = next((s for s in exits if s), 0)
        return Result(
            command.text,
            "fix",
            Status.OK if status == 0 else Status.FAILED,
            result={"name": command.args["name"], "exit_status": status, "steps": steps},
            stdout=out,
        )


@dataclass
class Recorder:
    steps: list[StepRun] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)

    def step(self, run: StepRun) -> None:
        self.steps.append(run)

    def plan(self, plan: Plan, chosen: Any) -> None:
        self.plans.append(plan)

    def asking_customer(self, asking: str) -> None:
        pass


def run(
    session: FakeSession,
    mine: Fix | None,
    params: dict[str, str] | None = None,
    *,
    check_only: bool = False,
    progress: Recorder | None = None,
) -> FixResult:
    return asyncio.run(
        run_fix(
            cast(TechnicianSession, session),
            "restart-thing",
            mine,
            {"unit": "cups.service"} if params is None else params,
            check_only=check_only,
            progress=progress,
        )
    )


def purposes(result: FixResult) -> list[str]:
    return [s.purpose.value for s in result.steps]


# -- the installed fix, judged by exit status -----------------------------------------


def test_not_needed_is_ok_after_the_check_alone() -> None:
    fix = make_fix()
    session = FakeSession(Script(), {fix.name: entry(fix)})
    result = run(session, fix)
    assert result.status is FixStatus.OK
    assert result.exit_code is ExitCode.OK
    assert purposes(result) == ["check"]
    assert result.plan is None
    assert [c.args for c in session.commands] == [
        {"name": "restart-thing", "step": "check", "params": {"unit": "cups.service"}}
    ]


def test_needed_applies_verifies_and_checks_again() -> None:
    fix = make_fix()
    session = FakeSession(Script(exits={"check": [3]}), {fix.name: entry(fix)})
    progress = Recorder()
    result = run(session, fix, progress=progress)
    assert result.status is FixStatus.CHANGED
    assert purposes(result) == ["check", "apply", "verify", "recheck"]
    assert [s.purpose for s in progress.steps] == [s.purpose for s in result.steps]
    assert [c.args["step"] for c in session.commands] == ["check", "apply", "verify", "check"]
    # The plan: apply's commands as the agent resolves them, {home} too.
    assert progress.plans == [result.plan]
    assert result.plan is not None
    assert result.plan.apply == (
        ("systemctl", "restart", "cups.service"),
        ("touch", f"{HOME}/restarted"),
    )
    assert result.plan.rollback == (("systemctl", "stop", "cups.service"),)
    assert "exited 3" in result.plan.reason
    assert result.chosen is not None and not result.chosen.brought
    assert "declaration" not in session.commands[0].args


def test_check_only_stops_at_the_plan() -> None:
    fix = make_fix()
    session = FakeSession(Script(exits={"check": [1]}), {fix.name: entry(fix)})
    result = run(session, fix, check_only=True)
    assert result.status is FixStatus.WOULD_CHANGE
    assert result.exit_code is ExitCode.OK
    assert [c.args["step"] for c in session.commands] == ["check"]
    assert result.plan is not None


def test_a_fix_without_check_is_not_previewable_and_sends_nothing() -> None:
    fix = make_fix(check=[])
    session = FakeSession(Script(), {fix.name: entry(fix)})
    result = run(session, fix, check_only=True)
    assert result.status is FixStatus.NOT_PREVIEWABLE
    assert result.exit_code is ExitCode.FAILED
    assert session.commands == []


def test_a_fix_without_check_applies_and_verifies_without_a_second_check() -> None:
    fix = make_fix(check=[])
    session = FakeSession(Script(), {fix.name: entry(fix)})
    result = run(session, fix)
    assert result.status is FixStatus.CHANGED
    assert purposes(result) == ["apply", "verify"]


@pytest.mark.parametrize("failing", ["apply", "verify"])
def test_a_failed_apply_or_verify_rolls_back(failing: str) -> None:
    fix = make_fix()
    session = FakeSession(Script(exits={"check": [1], failing: [0, 1]}), {fix.name: entry(fix)})
    result = run(session, fix)
    assert result.status is FixStatus.FAILED
    assert result.exit_code is ExitCode.FAILED
    expected = ["check", "apply", "rollback"] if failing == "apply" else None
    assert purposes(result) == (expected or ["check", "apply", "verify", "rollback"])
    assert result.message == f"{failing} failed (exit 1); rolled back"


def test_a_failed_rollback_is_said() -> None:
    fix = make_fix()
    script = Script(exits={"check": [1], "apply": [2], "rollback": [5]})
    result = run(FakeSession(script, {fix.name: entry(fix)}), fix)
    assert result.status is FixStatus.FAILED
    assert result.message == "apply failed (exit 2); the rollback failed too"


def test_a_failed_apply_without_rollback_just_fails() -> None:
    fix = make_fix(rollback=[])
    script = Script(exits={"check": [1], "apply": [2]})
    result = run(FakeSession(script, {fix.name: entry(fix)}), fix)
    assert result.status is FixStatus.FAILED
    assert purposes(result) == ["check", "apply"]
    assert "has no rollback" in result.message


def test_still_needed_after_apply_fails_the_idempotence_check() -> None:
    fix = make_fix()
    script = Script(exits={"check": [1], "recheck": [1]})
    result = run(FakeSession(script, {fix.name: entry(fix)}), fix)
    assert result.status is FixStatus.FAILED
    assert purposes(result) == ["check", "apply", "verify", "recheck"]
    assert "still says it is needed" in result.message


def test_a_check_that_cannot_run_fails() -> None:
    fix = make_fix()
    result = run(FakeSession(Script(exits={"check": [127]}), {fix.name: entry(fix)}), fix)
    assert result.status is FixStatus.FAILED
    assert "could not run" in result.message


# -- refusals ------------------------------------------------------------------------


def test_the_customers_no_is_declined() -> None:
    fix = make_fix()
    script = Script(exits={"check": [1]}, refuse={"apply": "declined"})
    session = FakeSession(script, {fix.name: entry(fix)})
    result = run(session, fix)
    assert result.status is FixStatus.DECLINED
    assert result.exit_code is ExitCode.REFUSED
    assert purposes(result) == ["check", "apply"]  # no rollback of what never ran


@pytest.mark.parametrize("answer", ["", "no answer", "nobody to ask"])
def test_a_refusal_nobody_said_no_to_is_refused(answer: str) -> None:
    fix = make_fix()
    script = Script(exits={"check": [1]}, refuse={"apply": answer})
    result = run(FakeSession(script, {fix.name: entry(fix)}), fix)
    assert result.status is FixStatus.REFUSED
    assert result.exit_code is ExitCode.REFUSED


def test_a_refused_check_is_refused() -> None:
    fix = make_fix()
    script = Script(refuse={"check": ""})
    result = run(FakeSession(script, {fix.name: entry(fix)}), fix)
    assert result.status is FixStatus.REFUSED
    assert purposes(result) == ["check"]


def test_parameters_the_agents_declaration_refuses_send_nothing() -> None:
    fix = make_fix()
    session = FakeSession(Script(), {fix.name: entry(fix)})
    result = run(session, fix, {"unit": "-rf"})
    assert result.status is FixStatus.REFUSED
    assert "cannot start with '-'" in result.message
    assert session.commands == []


def test_neither_side_has_it_sends_nothing() -> None:
    session = FakeSession(Script())
    result = run(session, None)
    assert result.status is FixStatus.REFUSED
    assert "no fix named restart-thing" in result.message
    assert session.commands == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SessionEnded("the customer ended the session"), FixStatus.REFUSED),
        (ConnectionLost("the connection to the agent was lost"), FixStatus.UNREACHABLE),
    ],
)
def test_the_session_going_away_is_a_result(error: Exception, status: FixStatus) -> None:
    fix = make_fix()
    session = FakeSession(Script(), {fix.name: entry(fix)})
    session.raises = error
    result = run(session, fix)
    assert result.status is status
    assert result.message == str(error)


# -- whose declaration, and who decides ------------------------------------------------


def test_the_same_declaration_lets_the_plugin_decide() -> None:
    fix = make_fix(decide=_decide)
    script = Script(exits={"check": [0]}, stdout={"check": b"stale\n"})
    session = FakeSession(script, {fix.name: entry(fix)})
    progress = Recorder()
    result = run(session, fix, check_only=True, progress=progress)
    # Exit 0 would be "not needed" by the exit-status rule: the plugin said needed.
    assert result.status is FixStatus.WOULD_CHANGE
    assert result.chosen is not None and result.chosen.decided_by is DecidedBy.PLUGIN
    assert progress.plans[0].diff == "- stale cups.service\n+ fresh"


def test_the_agents_own_version_is_not_guessed_at_when_your_plugin_decides() -> None:
    mine = make_fix(decide=_decide)
    theirs = make_fix(version="2.0")
    script = Script(exits={"check": [0]}, stdout={"check": b"stale\n"})
    session = FakeSession(script, {theirs.name: entry(theirs)})
    result = run(session, mine)
    # Exit 0 would read "not needed"; the plugin reads the output and might say needed.
    assert result.status is FixStatus.FAILED
    assert result.message.startswith("cannot tell whether restart-thing is needed: ")
    assert "its own restart-thing (version 2.0, yours is 1.0)" in result.message
    assert session.commands == [] and result.steps == ()


def test_the_agents_own_version_is_judged_by_exit_status_when_yours_has_no_decide() -> None:
    mine = make_fix()
    theirs = make_fix(version="2.0")
    script = Script(exits={"check": [0]}, stdout={"check": b"stale\n"})
    result = run(FakeSession(script, {theirs.name: entry(theirs)}), mine)
    assert result.status is FixStatus.OK  # by exit status, as yours would be judged too
    assert result.chosen is not None
    assert result.chosen.decided_by is DecidedBy.EXIT_STATUS
    assert result.chosen.fix.version == "2.0" and result.chosen.note == ""


def test_a_fix_the_agent_lacks_is_brought_whole() -> None:
    mine = make_fix()
    session = FakeSession(Script(exits={"check": [1]}))
    result = run(session, mine)
    assert result.status is FixStatus.CHANGED
    assert all(c.args["declaration"] == mine.to_dict() for c in session.commands)
    assert result.chosen is not None and result.chosen.brought


def test_a_plugin_whose_decide_raises_fails_the_run() -> None:
    def broken(outputs: Sequence[StepOutput], values: Mapping[str, str]) -> Decision:
        raise KeyError("no such field")

    fix = make_fix(decide=broken)
    result = run(FakeSession(Script(), {fix.name: entry(fix)}), fix)
    assert result.status is FixStatus.FAILED
    assert "could not decide" in result.message


def test_an_unreadable_agent_declaration_is_refused() -> None:
    session = FakeSession(Script(), {"restart-thing": {"kind": "fix", "name": "BAD"}})
    result = run(session, make_fix())
    assert result.status is FixStatus.REFUSED
    assert session.commands == []


def test_choose_without_the_technicians_declaration_takes_the_agents() -> None:
    theirs = make_fix()
    chosen = choose(theirs.name, None, {"procedures": {"fixes": {theirs.name: entry(theirs)}}})
    assert chosen.fix == theirs and not chosen.brought and chosen.note == ""


# -- the pieces ------------------------------------------------------------------------


def test_fix_command_is_what_the_prompt_would_type() -> None:
    command = fix_command(
        "clear-queue", Purpose.RECHECK.step, {"printer": "lp 1"}, declaration={"x": 1}
    )
    assert command.text == "fix clear-queue --step check -p 'printer=lp 1'"
    assert command.op == "fix"
    assert command.args == {
        "name": "clear-queue",
        "step": "check",
        "params": {"printer": "lp 1"},
        "declaration": {"x": 1},
    }


def test_add_param_reads_key_value_pairs_once_each() -> None:
    params: dict[str, str] = {}
    for pair in ["a=1", "b=x=y", "c="]:
        add_param(params, pair)
    assert params == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        add_param(params, "novalue")
    with pytest.raises(UsageError, match="twice"):
        add_param(params, "a=2")


def test_step_outputs_cut_each_commands_output() -> None:
    result = Result(
        "fix x",
        "fix",
        Status.OK,
        result={
            "steps": [
                {"argv": ["a"], "exit_status": 0, "stdout_bytes": 3, "stderr_bytes": 1},
                {"argv": ["b", "c"], "exit_status": 2, "stdout_bytes": "9"},
                "not a step",
            ]
        },
        stdout=b"onetwo",
        stderr=b"!?",
    )
    assert step_outputs(result) == [
        StepOutput(("a",), 0, b"one", b"!"),
        StepOutput(("b", "c"), 2, b"two", b"?"),  # the rest belongs to the last one
    ]
