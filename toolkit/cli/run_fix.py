"""``toolkit run FIX``: one known fix on one customer's machine, check first (docs/run.md).

A renderer over :func:`toolkit.session.workflow.run_session` (consent to attached
transcript, as for ``toolkit connect``) whose work is
:func:`toolkit.session.fix_run.run_fix`: it parses the flags, checks the
parameters against the technician's own declaration before connecting, and
says what happens (stderr for people; with --json one line per step and a
summary on stdout), ending with the recap.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._console import say
from toolkit.cli._fixes import not_yours, technician_fix
from toolkit.cli._identity import AgentOption, KeyOption
from toolkit.cli._relay import (
    DEFAULT_RELAY_DIR,
    RelayDirOption,
    RelayOption,
)
from toolkit.cli._session import (
    GrantOption,
    HostKeyOption,
    error_line,
    place_of,
    session_request,
)
from toolkit.cli._terminal import write_output
from toolkit.cli.connect import _Screen
from toolkit.errors import ExitCode, ToolkitError, UsageError
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    from toolkit.session.fix_run import Chosen, FixResult, Plan, StepRun
    from toolkit.session.results import SessionResult, Tally
    from toolkit.session.technician import TechnicianSession


def run_command(
    fix: Annotated[str, typer.Argument(metavar="FIX", help="The fix to run, by name.")],
    address: Annotated[
        str | None,
        typer.Argument(metavar="HOST:PORT", help="What toolkit share printed (not with --relay)."),
    ] = None,
    *,
    ticket: Annotated[
        str | None,
        typer.Option(
            "--ticket",
            metavar="TICKET",
            help="The support ticket this run is for (with --inventory: one per host is "
            "possible, see docs/fleet.md).",
            show_default=False,
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="A parameter of the fix (repeatable); checked before connecting.",
            show_default=False,
        ),
    ] = None,
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            metavar="CODE",
            help="The customer's one-time code [default: ask, shown as typed].",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only check and show the plan; ask for the diagnostics scope alone, so the "
            "agent refuses anything that writes.",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON line per step, then a summary line."),
    ] = False,
    key: KeyOption = None,
    agent: AgentOption = None,
    relay: RelayOption = None,
    relay_dir: RelayDirOption = DEFAULT_RELAY_DIR,
    grant: GrantOption = None,
    host_key: HostKeyOption = None,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            metavar="FILE",
            help="Run on the hosts of this inventory (docs/fleet.md), each in its own session.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        str | None,
        typer.Option(
            "--limit",
            metavar="PATTERN",
            help="With --inventory: only these hosts (names, groups, globs, !x, &x, @RETRYFILE).",
            show_default=False,
        ),
    ] = None,
    forks: Annotated[
        int,
        typer.Option("--forks", metavar="N", help="With --inventory: hosts at once."),
    ] = 10,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="With --inventory: how long one host may take [default: no limit].",
            show_default=False,
        ),
    ] = None,
    retry_file: Annotated[
        Path | None,
        typer.Option(
            "--retry-file",
            metavar="FILE",
            help="With --inventory: where to list the hosts to run again [default: "
            "INVENTORY.retry].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a known fix: check, show the plan, apply, verify, check again; then a recap."""
    if inventory is not None:  # a fleet: docs/fleet.md
        from toolkit.cli.fleet import FleetOptions, fleet_command

        if address is not None or code is not None or relay is not None:
            raise UsageError(
                "With --inventory, the hosts come from it: no HOST:PORT, --code or --relay."
            )
        return fleet_command(
            FleetOptions(
                fix, inventory, ticket, tuple(param or ()), check, as_json, limit, forks,
                timeout, retry_file, grant=grant,
                key=key, agent=agent,
            )
        )  # fmt: skip
    if ticket is None:
        raise UsageError("Missing option '--ticket'.", hint="Give the ticket this run is for.")
    screen = _RunScreen(as_json)
    try:
        exit_code = _run(
            fix, address, ticket, param or [], code, check, as_json, key, agent, relay, relay_dir,
            screen, grant=grant, host_key=host_key,
        )  # fmt: skip
    except ToolkitError as exc:
        if screen.printed:  # after the summary line (a transcript that could not be written)
            raise
        if as_json:  # a script hears why, on stdout too (an error before the session)
            line = {**error_line(exc), "fix": fix}
            if screen.place is not None:  # it tried to connect: a run's result too
                line["result"] = _result_of(exc)
            print(json.dumps(line), flush=True)
        if screen.place is None:
            raise  # a usage error: said as for any command, no recap
        say(printable_lines(exc.diagnostics()))
        from toolkit.cli.render import recap_line

        recap = recap_line(screen.place, _result_of(exc), 0, int(exc.exit_code), exc.message)
        say(printable(recap))
        raise typer.Exit(int(exc.exit_code)) from None
    if exit_code:
        raise typer.Exit(exit_code)


def _result_of(exc: ToolkitError) -> str:
    """A run's result when the session never started: unreachable, declined or refused."""
    from toolkit.consent import Declined
    from toolkit.consent.errors import NothingOffered
    from toolkit.errors import TransportError

    if isinstance(exc, TransportError):
        return "unreachable"
    # Nothing offered: no one said no; the share offers other scopes than a run needs.
    return (
        "declined"
        if isinstance(exc, Declined) and not isinstance(exc, NothingOffered)
        else "refused"
    )


def _run(
    name: str,
    address: str | None,
    ticket: str,
    pairs: list[str],
    code: str | None,
    check_only: bool,
    as_json: bool,
    key: Path | None,
    agent: str | None,
    relay: str | None,
    relay_dir: str,
    screen: _RunScreen,
    *,
    grant: Path | None = None,
    host_key: str | None = None,
) -> int:
    import asyncio

    from toolkit.consent import Scope
    from toolkit.plugins.declaration import NAME
    from toolkit.session.commands import add_param
    from toolkit.session.fix_run import run_fix
    from toolkit.session.results import COMPLETED
    from toolkit.session.workflow import run_session
    from toolkit.tickets.base import check_ticket_id

    if not NAME.fullmatch(name):
        raise UsageError(f"{printable(name, 64)!r} is not a fix's name (lower-case-with-dashes).")
    params: dict[str, str] = {}
    for pair in pairs:
        add_param(params, pair)
    mine = technician_fix(name)
    if mine is not None:
        mine.bind(params)  # a bad -p is refused here, before anything connects
    else:
        not_yours(name)
    place = place_of(address, relay, relay_dir)
    check_ticket_id(ticket)
    # check and verify are read-only (the diagnostics scope); --check asks for nothing more.
    asked = frozenset({Scope.DIAGNOSTICS} if check_only else {Scope.DIAGNOSTICS, Scope.FIXES})
    request = session_request(
        place, ticket, code, asked, key, agent, verdict=as_json, grant=grant, host_key=host_key,
        fix=name,
    )  # fmt: skip
    screen.grant = request.grant.id if request.grant is not None else None

    async def work(session: TechnicianSession, tally: Tally) -> tuple[ExitCode, str]:
        outcome = await run_fix(session, name, mine, params, check_only=check_only, progress=screen)
        for run in outcome.steps:
            tally.count(run.result)
        screen.outcome = outcome
        return outcome.exit_code, outcome.ended or COMPLETED

    screen.name = name
    from toolkit.consent.errors import NothingOffered

    try:
        return asyncio.run(run_session(request, screen, work)).exit_code
    except NothingOffered as exc:  # its own hint names connect's --scope, which run has not
        needs = "diagnostics" if check_only else "diagnostics and fixes"
        offer = "--scope diagnostics" + ("" if check_only else " --scope fixes")
        raise NothingOffered(
            exc.message,
            hint=f"toolkit run {'--check ' if check_only else ''}asks for {needs}: ask the "
            f"customer to run toolkit share {offer}, and run it again with their new code.",
        ) from None


class _RunScreen(_Screen):
    """connect's screen for the session (consent, attaching), plus the run's own lines: each
    step's commands on stderr as connect's headers (their output on stdout, without --json),
    the plan, and the summary and recap at the end."""

    def __init__(self, as_json: bool) -> None:
        super().__init__(as_json)
        self.name = ""
        self.place: str | None = None  # where it connects, once it tries: the recap's host
        self.outcome: FixResult | None = None

    def connecting(self, place: str) -> None:
        self.place = place
        super().connecting(place)

    # FixProgress (asking_customer: connect's)

    def step(self, run: StepRun) -> None:
        from toolkit.session.fix_run import Purpose
        from toolkit.session.results import Status

        result = run.result
        if self.as_json:
            body = {"type": "result", "line": None, "step": run.step.value}
            print(json.dumps({**body, "purpose": run.purpose.value, **result.to_json()}))
            sys.stdout.flush()
        label = "check again" if run.purpose is Purpose.RECHECK else run.purpose.value
        if result.status is Status.REFUSED or result.error:
            message = result.message or ""
            if not message.startswith(f"{result.status}:"):  # the agent's often says it
                message = f"{result.status}: {message}"
            say(printable(f"{label}: {message}"))
            return
        for output in run.outputs:
            say(f"== {label}: {printable(' '.join(output.argv))} (exit {output.exit_status})")
            if not self.as_json:
                write_output(sys.stdout, output.stdout)
                write_output(sys.stderr, output.stderr)

    def plan(self, plan: Plan, chosen: Chosen) -> None:
        if chosen.note:
            say(f"note: {printable(chosen.note)}")
        say(printable(f"plan: {chosen.fix.name} is needed: {plan.reason}".rstrip(": ")))
        for argv in plan.apply:
            say(f"  apply: {printable(_shown(argv))}")
        for argv in plan.rollback:
            say(f"  rollback (if apply or verify fails): {printable(_shown(argv))}")
        if plan.diff:
            say("  diff:")
            for line in plan.diff.splitlines():
                say(f"    {printable(line)}")

    # SessionUI

    def finished(self, result: SessionResult) -> None:
        outcome = self.outcome
        if self.as_json:
            print(json.dumps(_summary(result, self.name, outcome)), flush=True)
            self.printed = True
        status = outcome.status.value if outcome is not None else "interrupted"
        steps = len(outcome.steps) if outcome is not None else 0
        why = outcome.message if outcome is not None else result.ended
        from toolkit.cli.render import recap_line

        recap = recap_line(self.place or "?", status, steps, result.exit_code, why)
        if result.exit_code == 0 and why:  # else the recap itself says why
            say(printable(f"{status}: {why}"))
        say(printable(recap))


def _shown(argv: tuple[str, ...]) -> str:
    """A command as the step lines show it: no shell ever reads it, so nothing is quoted."""
    return " ".join(argv)


def _summary(result: SessionResult, name: str, outcome: FixResult | None) -> dict[str, Any]:
    """The closing JSON line (docs/run.md, "JSON"): the run's result, then the session's."""
    plan = outcome.plan if outcome is not None else None
    chosen = outcome.chosen if outcome is not None else None
    session = result.to_json()
    for counted in ("ok", "failed", "refused"):  # a run's steps are counted by "steps"
        session.pop(counted, None)
    return {
        "type": "summary",
        "result": outcome.status.value if outcome is not None else "interrupted",
        "fix": name,
        "message": outcome.message if outcome is not None else result.ended,
        "check_only": outcome.check_only if outcome is not None else None,
        "params": dict(outcome.params) if outcome is not None else {},
        "procedure": outcome.procedure if outcome is not None else None,
        "brought": chosen.brought if chosen is not None else None,
        "decided_by": chosen.decided_by.value if chosen is not None else None,
        "plan": (
            {
                "apply": [list(c) for c in plan.apply],
                "rollback": [list(c) for c in plan.rollback],
                "diff": plan.diff,
                "reason": plan.reason,
            }
            if plan is not None
            else None
        ),
        "steps": [run.purpose.value for run in outcome.steps] if outcome is not None else [],
        **session,
    }


__all__ = ["run_command"]
