"""``toolkit run FIX``: one known fix on one customer's machine, check first (docs/run.md)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._console import say
from toolkit.cli._identity import AgentOption, KeyOption, load_identity
from toolkit.cli._relay import (
    DEFAULT_RELAY_DIR,
    RelayDirOption,
    RelayOption,
    confirm_relay_host,
    relay_route,
)
from toolkit.cli._terminal import write_output
from toolkit.errors import ExitCode, ToolkitError, UsageError
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    from toolkit.cli.connect import _Place
    from toolkit.consent import Scope
    from toolkit.identity.store import Identity
    from toolkit.plugins import Fix
    from toolkit.secrets import Secret
    from toolkit.session.fix_run import Chosen, FixResult, Plan, StepRun
    from toolkit.session.technician import TechnicianSession


def run_command(
    fix: Annotated[str, typer.Argument(metavar="FIX", help="The fix to run, by name.")],
    address: Annotated[
        str | None,
        typer.Argument(metavar="HOST:PORT", help="What toolkit share printed (not with --relay)."),
    ] = None,
    *,
    ticket: Annotated[
        str,
        typer.Option("--ticket", metavar="TICKET", help="The support ticket this run is for."),
    ],
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
) -> None:
    """Run a known fix: check, show the plan, apply, verify, check again; then a recap."""
    from toolkit.cli.connect import _error_line

    try:
        exit_code = _run(
            fix, address, ticket, param or [], code, check, as_json, key, agent, relay, relay_dir
        )
    except ToolkitError as exc:
        if as_json:  # a script hears why, on stdout too (an error before the session)
            print(json.dumps({**_error_line(exc), "fix": fix}), flush=True)
        raise
    if exit_code:
        raise typer.Exit(exit_code)


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
    relay_dir: str = DEFAULT_RELAY_DIR,
) -> int:
    import asyncio

    from toolkit.cli.connect import _Place
    from toolkit.cli.share import parse_address
    from toolkit.consent import Scope, parse_code
    from toolkit.plugins.declaration import NAME
    from toolkit.session.fix_run import parse_params
    from toolkit.tickets.base import check_ticket_id

    if not NAME.fullmatch(name):
        raise UsageError(f"{printable(name, 64)!r} is not a fix's name (lower-case-with-dashes).")
    params = parse_params(pairs)
    mine = technician_fix(name)
    if mine is not None:
        mine.bind(params)  # a bad -p is refused here, before anything connects
    route = relay_route(relay, relay_dir)
    if route is not None:
        if address is not None:
            raise UsageError("Give HOST:PORT or --relay, not both.")
        host, port = str(route.address), 0
    elif address is None:
        raise UsageError(
            "Where is the customer's toolkit share?",
            hint="Give the HOST:PORT it printed, or --relay [USER@]HOST[:PORT] and its code.",
        )
    else:
        host, port = parse_address(address)
        if port == 0:
            raise UsageError(
                f"{address!r} has no port: use the HOST:PORT that toolkit share printed."
            )
    check_ticket_id(ticket)
    secret = parse_code(code) if code is not None else None
    if secret is None and not sys.stdin.isatty():
        raise UsageError("No --code given and no terminal to ask for it.", hint="Pass --code CODE.")
    # check and verify are read-only (the diagnostics scope); --check asks for nothing more.
    asked = frozenset({Scope.DIAGNOSTICS} if check_only else {Scope.DIAGNOSTICS, Scope.FIXES})
    if route is not None:
        confirm_relay_host(route)
    identity = load_identity(key, agent)
    from toolkit.cli.tickets import sync_once_quietly

    sync_once_quietly()
    place = _Place(host, port, route)
    return asyncio.run(
        _session(place, identity, ticket, asked, secret, name, mine, params, check_only, as_json)
    )


def technician_fix(name: str) -> Fix | None:
    """The technician's own declaration of the fix ``name``, from their installed plugins."""
    import importlib

    from toolkit.plugins import Kind

    try:  # the loader lands with the plugin work (toolkit.plugins.loader)
        loader: Any = importlib.import_module("toolkit.plugins.loader")
    except ModuleNotFoundError:
        return None
    found = loader.installed().find(Kind.FIX, name)
    if found is None:
        return None
    procedure, _ = found
    from toolkit.plugins import Fix

    return procedure if isinstance(procedure, Fix) else None


class _Progress:
    """Each step's commands on stderr as connect's headers, their output on stdout (not --json)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def step(self, run: StepRun) -> None:
        from toolkit.session.fix_run import Purpose

        result = run.result
        if self.as_json:
            body = {"type": "result", "line": None, "step": run.step.value}
            print(json.dumps({**body, "purpose": run.purpose.value, **result.to_json()}))
            sys.stdout.flush()
        label = "check again" if run.purpose is Purpose.RECHECK else run.purpose.value
        if result.status == "refused" or result.error:
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


def _shown(argv: tuple[str, ...]) -> str:
    """A command as the step lines show it: no shell ever reads it, so nothing is quoted."""
    return " ".join(argv)


async def _session(
    place: _Place,
    identity: Identity,
    ticket: str,
    asked: frozenset[Scope],
    code: Secret | None,
    name: str,
    mine: Fix | None,
    params: dict[str, str],
    check_only: bool,
    as_json: bool,
) -> int:
    import asyncio

    from toolkit.transport._asyncssh import load

    load()
    from toolkit.cli.connect import _Asking, _attach, _consent, _verdict
    from toolkit.consent import scope_names
    from toolkit.session.fix_run import run_fix
    from toolkit.session.technician import TechnicianSession

    shown = place.shown(code) if code is not None else f"{place.host}:{place.port}"
    try:
        conn, consent, code = await _consent(place, identity, ticket, asked, code)
    except ToolkitError as exc:  # no session: why, then the recap, as every run ends
        from toolkit.cli.connect import _error_line
        from toolkit.consent import Declined
        from toolkit.errors import TransportError

        status = (
            "unreachable"
            if isinstance(exc, TransportError)
            else "declined"
            if isinstance(exc, Declined)
            else "refused"
        )
        if as_json:
            print(json.dumps({**_error_line(exc), "fix": name, "result": status}), flush=True)
        say(printable_lines(exc.diagnostics()))
        say(printable(_recap(shown, status, 0, int(exc.exit_code), exc.message)))
        return int(exc.exit_code)
    shown = place.shown(code)
    say(
        f"Consent passed. Agent host key {consent.host_key_fingerprint}; "
        f"granted: {', '.join(scope_names(consent.granted))}."
    )
    session = await TechnicianSession.start(conn, consent, identity, shown)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupted: list[bool] = []

    def interrupt() -> None:
        interrupted.append(True)
        if main is not None:
            main.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    result: FixResult | None = None
    reason = "the technician's toolkit stopped on an error"
    try:
        session.client.on_notice = _Asking().notice
        result = await run_fix(
            session, name, mine, params, check_only=check_only, progress=_Progress(as_json)
        )
        reason = "completed"
    except asyncio.CancelledError:
        if not interrupted:
            raise
        reason = "interrupted by the technician (Ctrl-C)"
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        session.client.on_notice = None
        failure = session.recorder.failure
        if failure is not None:
            reason = "the technician's transcript could not be written"
        path = await session.end(reason)
        verdict = _verdict(path) if as_json else None
        if session.recorder.failure is None:
            _attach(ticket, path, session, reason)
        if result is None:
            exit_code = int(ExitCode.INTERRUPTED if interrupted else ExitCode.FAILED)
        else:
            exit_code = int(result.exit_code)
        if failure is not None:
            exit_code = int(failure.exit_code)
        if as_json:
            line = _summary(session, path, verdict, reason, exit_code, name, result)
            print(json.dumps(line), flush=True)
        if result is not None:
            recap = _recap(shown, result.status.value, len(result.steps), exit_code, result.message)
            say(printable(recap))
        else:
            say(printable(_recap(shown, "interrupted", 0, exit_code, reason)))
    if session.recorder.failure is not None:
        raise session.recorder.failure
    return exit_code


def _recap(host: str, status: str, steps: int, exit_code: int, why: str) -> str:
    """The closing line, as Ansible's PLAY RECAP: ``recap: HOST result=changed steps=4 (exit 0)``.

    A result of two words is joined with a dash (``would-change``) so the line splits on spaces.
    """
    counts = f"recap: {host} result={status.replace(' ', '-')} steps={steps}"
    if exit_code == 0:
        return f"{counts} (exit 0)"
    first = (why.splitlines() or [why])[0].rstrip(".")
    return f"{counts} (exit {exit_code}: {first})"


def _summary(
    session: TechnicianSession,
    path: Path,
    verdict: str | None,
    reason: str,
    exit_code: int,
    name: str,
    result: FixResult | None,
) -> dict[str, Any]:
    """The closing JSON line (docs/run.md, "JSON")."""
    plan = result.plan if result is not None else None
    chosen = result.chosen if result is not None else None
    return {
        "type": "summary",
        "result": result.status.value if result is not None else "interrupted",
        "fix": name,
        "message": result.message if result is not None else reason,
        "check_only": result.check_only if result is not None else None,
        "params": dict(result.params) if result is not None else {},
        "procedure": result.procedure if result is not None else None,
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
        "steps": [run.purpose.value for run in result.steps] if result is not None else [],
        "session": session.recorder.header.session_id,
        "ticket": session.consent.ticket,
        "transcript": str(path),
        "verdict": verdict,
        "ended": reason,
        "exit_code": exit_code,
    }


__all__ = ["run_command", "technician_fix"]
