"""``toolkit run FIX --inventory FILE``: one fix on many hosts, each in its own session.

A renderer over :func:`toolkit.fleet.runner.run_fleet` (docs/fleet.md): it checks
everything it can before any host is reached (the inventory, ``--limit``, each
host's ticket and parameters, the grant, the identity), runs each host through
:func:`toolkit.fleet.session.run_host`, and says what happens:

- on stderr, for people: a progress bar and a live table of the hosts in flight
  when stderr is a terminal (nothing live otherwise); each host's output, whole
  and prefixed with its name, when it ends; then a recap line per host, the
  counts, the retry file and the signed run summary;
- with ``--json``, on stdout: one line per host step and one per host result as
  each host ends, then one summary line.

The exit code is the worst host's, ranked as a single run ranks them; 130 after Ctrl-C.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.cli._console import err, say
from toolkit.errors import ToolkitError, UsageError
from toolkit.text import printable

if TYPE_CHECKING:
    from rich.live import Live
    from rich.progress import Progress, TaskID

    from toolkit.fleet.inventory import Host
    from toolkit.fleet.results import FleetResult, HostResult
    from toolkit.fleet.runner import FleetEvent, RunOne, Stop
    from toolkit.fleet.summary import Written
    from toolkit.grants import Grant
    from toolkit.identity.store import Identity
    from toolkit.plugins import Fix


@dataclass(frozen=True)
class FleetOptions:
    """``toolkit run``'s flags for a fleet run."""

    fix: str
    inventory: Path
    ticket: str | None  # one ticket for the run, or a template with {host}
    pairs: tuple[str, ...] = ()
    check_only: bool = False
    as_json: bool = False
    limit: str | None = None
    forks: int = 10
    timeout: float | None = None
    retry_file: Path | None = None
    grant: Path | None = None
    key: Path | None = None
    agent: str | None = None


@dataclass(frozen=True)
class _Plan:
    """What the run will do, checked before any host is reached."""

    hosts: list[Host]
    params: dict[str, dict[str, str]]
    tickets: dict[str, str]
    mine: Fix | None
    grants: dict[str, Grant]  # by host name
    identity: Identity


def fleet_command(options: FleetOptions) -> None:
    """Run the fleet; raises typer.Exit with the worst host's exit code."""
    import typer

    try:
        plan = _prepare(options)
    except ToolkitError as exc:
        if options.as_json:  # a script hears why on stdout too, as for a single run
            from toolkit.cli._session import error_line

            print(json.dumps({**error_line(exc), "fix": options.fix}), flush=True)
        raise
    code = _execute(options, plan)
    if code:
        raise typer.Exit(code)


def _prepare(options: FleetOptions) -> _Plan:
    from toolkit.cli._fixes import not_yours, technician_fix
    from toolkit.cli._identity import load_identity
    from toolkit.fleet.inventory import load, select
    from toolkit.fleet.runner import MAX_FORKS
    from toolkit.grants.check import before_connecting
    from toolkit.plugins.declaration import NAME
    from toolkit.session.commands import add_param
    from toolkit.tickets.base import check_ticket_id

    name = options.fix
    if not NAME.fullmatch(name):
        raise UsageError(f"{printable(name, 64)!r} is not a fix's name (lower-case-with-dashes).")
    if not 1 <= options.forks <= MAX_FORKS:
        raise UsageError(f"--forks must be 1 to {MAX_FORKS}.")
    if options.timeout is not None and not options.timeout > 0:
        raise UsageError("--timeout must be a number of seconds above 0.")
    given: dict[str, str] = {}
    for pair in options.pairs:
        add_param(given, pair)
    inventory = load(options.inventory)
    hosts = select(inventory, options.limit)
    mine = technician_fix(name)
    params: dict[str, dict[str, str]] = {}
    tickets: dict[str, str] = {}
    for host in hosts:
        params[host.name] = {**host.params, **given}  # -p wins, as Ansible's -e
        if mine is not None:
            try:
                mine.bind(params[host.name])  # a bad value is refused before anything connects
            except ToolkitError as exc:
                raise UsageError(f"{host.name}: {exc.message}", hint=exc.hint) from None
        ticket = options.ticket.replace("{host}", host.name) if options.ticket else host.ticket
        if ticket is None:
            raise UsageError(
                f"No ticket for {host.name}: give --ticket, or ticket in the inventory.",
                hint="--ticket 'OPS-{host}' makes one ticket per host.",
            )
        tickets[host.name] = check_ticket_id(ticket)
    if mine is None:
        not_yours(name)
    grants = _load_grants(hosts, options.grant)
    for grant in set(grants.values()):  # a use on every host for nothing: refused here
        before_connecting(grant, fix=name)
    identity = load_identity(options.key, options.agent)
    return _Plan(hosts, params, tickets, mine, grants, identity)


def _load_grants(hosts: list[Host], given: Path | None) -> dict[str, Grant]:
    """The grant each host's session presents: the inventory's for it, else --grant's.

    Each file is read once, before any host is reached: a grant that is not one stops
    the run here, not on every host.
    """
    from toolkit.grants import load

    loaded: dict[Path, Grant] = {}
    out: dict[str, Grant] = {}
    for host in hosts:
        path = host.grant or given
        if path is None:
            raise UsageError(
                f"No grant for {host.name}: a fleet run has nobody to read a code on each host.",
                hint="Ask the machines' owner for one (toolkit grant issue), then pass "
                "--grant FILE (or grant = FILE in the inventory).",
            )
        if path not in loaded:
            loaded[path] = load(path)
        out[host.name] = loaded[path]
    return out


def _execute(options: FleetOptions, plan: _Plan) -> int:
    import asyncio

    from toolkit.fleet import retry, summary
    from toolkit.fleet.runner import Stop, run_fleet

    started = datetime.now(UTC)
    run_id = summary.new_run_id(started)
    stop = Stop()
    screen = _FleetScreen(plan.hosts, as_json=options.as_json)
    passphrase = _passphrase()
    run_one = _run_one(options, plan, stop, screen, passphrase)
    _retry_outbox(passphrase)
    with screen:
        fleet = asyncio.run(
            run_fleet(
                plan.hosts,
                run_one,
                forks=options.forks,
                timeout=options.timeout,
                on_event=screen.on_event,
                stop=stop,
                check_only=options.check_only,
            )
        )
    _recap(fleet)
    _attach_transcripts(fleet, passphrase)
    retry_path = options.retry_file or retry.default_path(options.inventory)
    again = fleet.to_retry()
    written_retry: Path | None = None
    if again:
        retry.write(retry_path, again, header=f"toolkit run {options.fix}: {run_id}")
        written_retry = retry_path
        say(
            printable(
                f"retry: {len(again)} host(s) in {retry_path}; run them again with "
                f"--limit @{retry_path}"
            )
        )
    document = summary.build(
        fleet,
        run_id=run_id,
        identity=plan.identity,
        fix=options.fix,
        declaration_sha256=plan.mine.sha256 if plan.mine is not None else None,
        check_only=options.check_only,
        inventory=options.inventory,
        limit=options.limit,
        tickets=plan.tickets,
        started=started,
        ended=datetime.now(UTC),
    )
    written = summary.write(document, plan.identity)
    attached = summary.attach(written, written.tickets, note=say, passphrase=passphrase)
    _said_summary(written, attached, plan.identity.email)
    if options.as_json:
        line = {
            "type": "summary",
            "run": run_id,
            "fix": options.fix,
            "check_only": options.check_only,
            "hosts": len(fleet.results),
            "counts": dict(fleet.counts),
            "interrupted": fleet.interrupted,
            "retry_file": str(written_retry) if written_retry is not None else None,
            "run_summary": str(written.path),
            "run_summary_sha256": written.sha256,
            "attached_to": attached,
            "exit_code": int(fleet.exit_code),
        }
        print(json.dumps(line), flush=True)
    return int(fleet.exit_code)


def _run_one(
    options: FleetOptions, plan: _Plan, stop: Stop, screen: _FleetScreen, passphrase: Any
) -> RunOne:
    from toolkit.cli._pins import known_agents
    from toolkit.cli.verify import default_allowed_signers
    from toolkit.fleet import session as fleet_session
    from toolkit.fleet.runner import EventKind, FleetEvent

    # Unattended: an unknown host key is refused, never asked about (docs/fleet.md).
    pins = known_agents(ask=False)
    allowed_signers = default_allowed_signers()

    async def run_one(host: Host) -> HostResult:
        def on_step(label: str) -> None:
            screen.on_event(FleetEvent(EventKind.STEP, host.name, label))

        return await fleet_session.run_host(
            host,
            options.fix,
            plan.params[host.name],
            options.check_only,
            plan.identity,
            plan.grants[host.name],
            mine=plan.mine,
            ticket=plan.tickets[host.name],
            pins=pins,
            stop=stop,
            on_step=on_step,
            allowed_signers=allowed_signers,
            passphrase=passphrase,
            attach=False,  # each host's transcript waits in the outbox; all go at once at the end
        )

    return run_one


def _retry_outbox(passphrase: Any) -> None:
    """What waits in the outbox from earlier runs, tried once before the hosts (as a single
    session's start does), not once per host."""
    from toolkit.cli.verify import default_allowed_signers
    from toolkit.tickets.attach import sync_quietly

    synced = sync_quietly(passphrase, default_allowed_signers(), say)
    done = sum(1 for _, delivered, _ in synced if delivered is not None)
    if synced:
        say(f"outbox: {done} of {len(synced)} waiting transcript(s) attached.")


def _attach_transcripts(fleet: FleetResult, passphrase: Any) -> None:
    """Every host's sealed transcript onto its ticket, together (one attach per ticket where
    the backend allows); what cannot go waits in the outbox, and the run says so."""
    from toolkit.cli.verify import default_allowed_signers
    from toolkit.tickets.attach import deliver_entries

    ids = [r.session for r in fleet.results if r.session is not None]
    if not ids:
        return
    tried = deliver_entries(ids, passphrase=passphrase, allowed_signers=default_allowed_signers())
    attached = [entry for entry, delivered, _ in tried if delivered is not None]
    tickets = sorted({entry.ticket for entry in attached})
    if attached:
        say(printable(f"transcripts: {len(attached)} attached to {', '.join(tickets)}"))
    for entry, delivered, error in tried:
        if delivered is None and error is not None:
            say(
                printable(
                    f"transcript of session {entry.id} waits in the outbox "
                    f"(ticket {entry.ticket}): {error.message.rstrip('.')}; "
                    "`toolkit tickets sync` attaches it."
                )
            )


def _passphrase() -> Any:
    """The ticket credentials' passphrase, asked at most once for the whole run."""
    from toolkit.cli.tickets import ask_passphrase

    asked: dict[bool, str] = {}

    def once(*, confirm: bool = False) -> str:
        if confirm not in asked:
            asked[confirm] = ask_passphrase(confirm=confirm)
        return asked[confirm]

    return once


def _recap(fleet: FleetResult) -> None:
    from toolkit.cli.render import recap_line

    for result in fleet.results:
        why = result.message or result.status.value
        if result.reason:
            why = f"{result.reason}: {why}"
        line = recap_line(result.host, result.status.value, len(result.steps), result.code, why)
        say(printable(line))
    counts = " ".join(f"{k.replace(' ', '-')}={v}" for k, v in fleet.counts.items())
    say(printable(f"hosts={len(fleet.results)} {counts} (exit {int(fleet.exit_code)})"))


def _said_summary(written: Written, attached: list[str], principal: str) -> None:
    import shlex

    from toolkit.fleet.summary import NAMESPACE

    q = shlex.quote
    on = f"; attached to {', '.join(attached)}" if attached else ""
    say(printable(f"run summary: {written.path} (signed: {written.signature}){on}"))
    say(
        printable(
            f"  verify: ssh-keygen -Y verify -f ALLOWED_SIGNERS -I {q(principal)} -n {NAMESPACE} "
            f"-s {q(str(written.signature))} < {q(str(written.path))}"
        )
    )


class _FleetScreen:
    """Progress and the hosts in flight (live, on a terminal only); each host's lines whole."""

    def __init__(self, hosts: list[Host], *, as_json: bool) -> None:
        self.as_json = as_json
        self.total = len(hosts)
        self.where = {h.name: h.where for h in hosts}
        self.in_flight: dict[str, tuple[str, float]] = {}  # host -> (step, since)
        self.done = 0
        console = err()
        self._live: Live | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if console.is_terminal:
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._progress = Progress(
                "{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            self._task = self._progress.add_task("hosts", total=self.total)
            self._live = Live(
                self, console=console, refresh_per_second=8, transient=True, redirect_stdout=False
            )

    def __enter__(self) -> _FleetScreen:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table("host", "where", "last step", "seconds", box=None, pad_edge=False)
        now = time.monotonic()
        for name, (step, since) in list(self.in_flight.items())[:20]:
            table.add_row(name, printable(self.where[name], 80), step, f"{now - since:.0f}")
        if len(self.in_flight) > 20:
            table.add_row(f"... {len(self.in_flight) - 20} more", "", "", "")
        assert self._progress is not None
        return Group(self._progress, table)

    def print(self, line: str) -> None:
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False, emoji=False)
        else:
            say(line)

    def on_event(self, event: FleetEvent) -> None:
        from toolkit.fleet.runner import EventKind

        name = event.host or ""
        if event.kind is EventKind.STARTED:
            self.in_flight[name] = ("connecting", time.monotonic())
        elif event.kind is EventKind.STEP and name in self.in_flight:
            self.in_flight[name] = (printable(event.detail, 40), self.in_flight[name][1])
        elif event.kind is EventKind.ENDED and event.result is not None:
            self.in_flight.pop(name, None)
            self.done += 1
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, completed=self.done)
            self.ended(event.result)
        elif event.kind is EventKind.STOPPING:
            self.print(
                "Ctrl-C: no new hosts; running ones end after their step and seal their "
                "transcripts (Ctrl-C again cancels them)."
            )
        elif event.kind is EventKind.FORCING:
            self.print("Ctrl-C again: cancelling the running hosts; their transcripts are sealed.")

    def ended(self, result: HostResult) -> None:
        """The host's lines, whole, each with its name; its JSON lines, together."""
        name = printable(result.host, 64)
        for line in result.output:
            self.print(f"{name} | {printable(line, None)}")
        why = f": {printable(result.message)}" if result.message else ""
        reason = f" ({printable(result.reason, 64)})" if result.reason else ""
        self.print(f"{name} | {result.status.value}{reason}{why}")
        if self.as_json:
            for step in result.steps:
                print(json.dumps(_step_line(result.host, step)))
            print(json.dumps(result.to_json()))
            sys.stdout.flush()


def _step_line(host: str, step: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "step", "host": host, **{k: v for k, v in step.items() if k != "type"}}


__all__ = ["FleetOptions", "fleet_command"]
