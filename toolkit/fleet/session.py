"""One host of a fleet: its own session, with a grant and its pinned host key, running the fix.

:func:`run_host` is the ``run_one`` the CLI hands the runner (toolkit.fleet.runner):
it builds the host's :class:`~toolkit.session.workflow.SessionRequest` (no code:
the grant is the consent; the host key must be the one the inventory pins),
runs :func:`~toolkit.session.fix_run.run_fix` in it through
:func:`~toolkit.session.workflow.run_session` (which ends, seals and attaches
the transcript), and returns a :class:`~toolkit.fleet.results.HostResult`
holding the host's output, buffered, for the CLI to print whole. It never
prints and never raises for what happens on the host.

Ctrl-C is the runner's (:class:`~toolkit.fleet.runner.Stop`): after the step it
is in, the host stops and its session ends as an interrupted one. A cancelled
host (its timeout, a second Ctrl-C) still ends its session in run_session's
``finally`` and returns what it came to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import (
    ConsentRefused,
    ExitCode,
    HostKeyRefused,
    ToolkitError,
    TransportError,
    UsageError,
)
from toolkit.fleet.inventory import Host
from toolkit.fleet.results import HostResult, HostStatus
from toolkit.fleet.runner import Stop
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    from toolkit.consent import Scope
    from toolkit.grants import Grant
    from toolkit.identity.store import Identity
    from toolkit.plugins import Fix
    from toolkit.secrets import Secret
    from toolkit.session.fix_run import Chosen, FixResult, Plan, StepRun
    from toolkit.session.results import SessionResult, Tally
    from toolkit.session.technician import TechnicianSession
    from toolkit.session.workflow import SessionRequest
    from toolkit.tickets.attach import Attached, Synced
    from toolkit.tickets.credentials import Passphrases
    from toolkit.transport.pins import KnownAgents

#: Told the step a host is at, for the live table.
OnStep = Callable[[str], None]


def _ignore(label: str) -> None:
    pass


class _Stopped(Exception):
    """Ctrl-C was pressed: the host ends after the step it just finished."""


class _HostScreen:
    """The session's and the fix's UI for one host: every line buffered, nothing printed."""

    def __init__(self, stop: Stop, on_step: OnStep, passphrase: Passphrases | None) -> None:
        self.lines: list[str] = []
        self.steps: list[dict[str, Any]] = []
        self.outcome: FixResult | None = None
        self.session: SessionResult | None = None
        self._stop = stop
        self._on_step = on_step
        self._passphrase = passphrase

    def say(self, text: str) -> None:
        self.lines += printable_lines(text).split("\n")

    # SessionUI

    async def ask_code(self, *, again: bool = False) -> Secret:
        raise UsageError("A fleet run has no one-time codes: each host needs a grant.")

    def ticket_passphrase(self, *, confirm: bool = False) -> str:
        if self._passphrase is None:
            raise UsageError(
                "The ticket credentials file needs a passphrase, and no one can type it."
            )
        return self._passphrase(confirm=confirm)

    def ticket_note(self, text: str) -> None:
        self.say(text)

    def outbox_tried(self, synced: Sequence[Synced]) -> None:
        pass  # said once for the run, not once per host

    def connecting(self, place: str) -> None:
        self._on_step("consent")
        self.say(f"Connecting to {printable(place)}...")

    def wrong_code(self, message: str) -> None:
        self.say(message)

    def consent_passed(self, host_key: str, granted: Sequence[str]) -> None:
        self._on_step("consent passed")
        self.say(f"Consent passed. Agent host key {printable(host_key)}; granted: "
                 f"{printable(', '.join(granted))}.")  # fmt: skip

    def attached(self, attached: Attached, principal: str) -> None:
        self.say(f"Transcript sealed and attached to ticket {printable(attached.ticket)}: "
                 f"{printable(attached.transcript)}")  # fmt: skip

    def attach_failed(self, error: ToolkitError) -> None:
        self.say(error.diagnostics())

    def finished(self, result: SessionResult) -> None:
        self.session = result

    # FixProgress

    def step(self, run: StepRun) -> None:
        from toolkit.session.fix_run import Purpose
        from toolkit.session.results import Status

        result = run.result
        self.steps.append(
            {"purpose": run.purpose.value, "step": run.step.value, **result.to_json()}
        )
        label = "check again" if run.purpose is Purpose.RECHECK else run.purpose.value
        if result.status is Status.REFUSED or result.error:
            message = result.message or ""
            if not message.startswith(f"{result.status}:"):
                message = f"{result.status}: {message}"
            self.say(printable(f"{label}: {message}"))
        else:
            for output in run.outputs:
                self.say(
                    f"== {label}: {printable(' '.join(output.argv))} (exit {output.exit_status})"
                )
                for data in (output.stdout, output.stderr):
                    if data:
                        self.say(printable_lines(data))
        if self._stop.stopping:
            raise _Stopped  # after the step, as Ctrl-C promises: the session ends now
        self._on_step(label)

    def plan(self, plan: Plan, chosen: Chosen) -> None:
        if chosen.note:
            self.say(f"note: {printable(chosen.note)}")
        self.say(printable(f"plan: {chosen.fix.name} is needed: {plan.reason}".rstrip(": ")))
        for argv in plan.apply:
            self.say(f"  apply: {printable(' '.join(argv))}")
        for argv in plan.rollback:
            self.say(f"  rollback (if apply or verify fails): {printable(' '.join(argv))}")

    def asking_customer(self, asking: str) -> None:
        self.say(f"waiting for the customer to approve {printable(asking, 120)}...")


def request_for(
    host: Host,
    *,
    identity: Identity,
    ticket: str,
    scopes: frozenset[Scope],
    grant: Grant | None,
    host_key_check: Callable[[bytes], None] | None,
    allowed_signers: Path | None,
    attach: bool = True,
) -> SessionRequest:
    """The host's SessionRequest: no code, the grant, the pinned host key check.

    ``attach=False``: the session only puts its transcript in the outbox (the fleet
    attaches every host's at once at the end)."""
    from toolkit.session.workflow import Place, SessionRequest

    place: Place
    if host.address is not None:
        place = Place(*host.address)
    else:
        from toolkit.transport.relay import RelayAddress, RelayRoute

        assert host.relay is not None
        route = RelayRoute(RelayAddress.parse(host.relay), name=host.relay_name)
        place = Place(str(route.address), 0, route)
    return SessionRequest(
        place,
        identity,
        ticket,
        scopes,
        None,
        allowed_signers=allowed_signers,
        verdict=False,
        grant=grant,
        host_key_check=host_key_check,
        attach=attach,
    )


async def run_host(
    host: Host,
    fix: str,
    params: Mapping[str, str],
    check_only: bool,
    identity: Identity,
    grant: Grant | None,
    *,
    mine: Fix | None,
    ticket: str,
    pins: KnownAgents | None = None,
    stop: Stop | None = None,
    on_step: OnStep = _ignore,
    allowed_signers: Path | None = None,
    passphrase: Passphrases | None = None,
    attach: bool = True,
) -> HostResult:
    """One host's whole session, as a :class:`HostResult`; see the module's docstring.

    ``grant`` is the consent its session presents; ``pins`` checks the agent's host
    key against the inventory's ``host_key`` (or the known agents file); ``params``
    are this host's, ``-p`` values already laid over it. ``attach=False`` leaves the
    sealed transcript in the outbox for the caller to attach with the others
    (toolkit.tickets.attach.deliver_entries; its entry's id is the session's).
    """
    from toolkit.consent import Declined, Scope
    from toolkit.consent.errors import NothingOffered
    from toolkit.session.fix_run import run_fix
    from toolkit.session.results import COMPLETED
    from toolkit.session.workflow import INTERRUPTED, run_session

    stop = stop or Stop()
    screen = _HostScreen(stop, on_step, passphrase)
    asked = frozenset({Scope.DIAGNOSTICS} if check_only else {Scope.DIAGNOSTICS, Scope.FIXES})
    check = pins.checker(host.name, host.address, host.host_key) if pins is not None else None
    grant_id = grant.id if grant is not None else None
    stopped: list[bool] = []
    uses: list[int] = []  # the agent's number for this use of the grant, once consent passed

    async def work(session: TechnicianSession, tally: Tally) -> tuple[ExitCode, str]:
        if session.consent.grant is not None:
            uses.append(session.consent.grant.use)
        if stop.stopping:  # Ctrl-C while consent ran: end before the first step
            stopped.append(True)
            return ExitCode.INTERRUPTED, INTERRUPTED
        try:
            outcome = await run_fix(
                session, fix, mine, params, check_only=check_only, progress=screen
            )
        except _Stopped:
            stopped.append(True)
            return ExitCode.INTERRUPTED, INTERRUPTED
        for run in outcome.steps:
            tally.count(run.result)
        screen.outcome = outcome
        return outcome.exit_code, outcome.ended or COMPLETED

    def result(status: HostStatus, message: str, **more: Any) -> HostResult:
        session = screen.session
        outcome = screen.outcome
        procedure = outcome.procedure if outcome is not None else None
        digest = procedure.get("sha256") if isinstance(procedure, dict) else None
        transcript = session.transcript if session is not None else None
        return HostResult(
            host.name,
            status,
            printable(message, 300),
            tuple(screen.steps),
            tuple(screen.lines),
            session=session.session if session is not None else None,
            transcript=transcript,
            transcript_sha256=_sha256(transcript),
            grant=grant_id,
            grant_use=uses[0] if uses else None,
            procedure_sha256=digest if isinstance(digest, str) else None,
            **more,
        )

    try:
        request = request_for(
            host,
            identity=identity,
            ticket=ticket,
            scopes=asked,
            grant=grant,
            host_key_check=check,
            allowed_signers=allowed_signers,
            attach=attach,
        )
        session = await run_session(request, screen, work, ctrl_c_ends=False)
    except asyncio.CancelledError:
        # A timeout or a second Ctrl-C: run_session's finally ended and sealed the session.
        if screen.session is None:
            return result(HostStatus.INTERRUPTED, "cancelled before its session started")
        return result(HostStatus.INTERRUPTED, "cancelled; its session was ended and sealed")
    except TransportError as exc:
        screen.say(exc.diagnostics())
        return result(HostStatus.UNREACHABLE, exc.message, exit_code=int(exc.exit_code))
    except ConsentRefused as exc:  # the handshake's refusals, and a pinned key's
        screen.say(exc.diagnostics())
        if isinstance(exc, Declined) and not isinstance(exc, NothingOffered):
            return result(HostStatus.DECLINED, exc.message)
        return result(HostStatus.CONSENT_REFUSED, exc.message, reason=refusal_reason(exc))
    except ToolkitError as exc:  # a transcript that could not be written, a usage error
        screen.say(exc.diagnostics())
        return result(HostStatus.FAILED, exc.message, exit_code=int(exc.exit_code))
    if not attach and session.attach_error is None:
        screen.say(f"Transcript sealed; it goes onto ticket {printable(ticket)} with the run's "
                   "others (it waits in the outbox until then).")  # fmt: skip
    if stopped:
        return result(HostStatus.INTERRUPTED, "stopped after its step (Ctrl-C)")
    outcome = screen.outcome
    if outcome is None:
        return result(HostStatus.FAILED, session.ended, exit_code=session.exit_code)
    status = HostStatus.of(outcome.status)
    worse = session.exit_code if session.exit_code != int(outcome.exit_code) else None
    return result(status, outcome.message, exit_code=worse)


def refusal_reason(exc: ConsentRefused) -> str:
    """A consent refusal's reason word: a grant's own (``expired``, ``used-up``: the
    technician's GrantRefused carries the agent's), the handshake's (``declined``,
    ``wrong-code``), or ``host-key`` for a pinned key that did not match."""
    from toolkit.consent import ConsentError

    if isinstance(exc, HostKeyRefused):
        return "host-key"
    if isinstance(exc, ConsentError):
        return exc.reason
    return "refused"


def _sha256(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    from toolkit.tickets.package import sha256_file

    return sha256_file(path)


__all__ = ["OnStep", "refusal_reason", "request_for", "run_host"]
