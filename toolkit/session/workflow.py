"""The technician's workflow as a library call: consent to attached transcript.

:func:`run_session` connects to the customer's agent, passes consent (asking
the code again after a wrong one, within the tries a real code has), starts
the recorded session, hands it to a ``work`` function, and then ends it,
seals the transcript and attaches it to the ticket through the outbox. It
returns a :class:`~toolkit.session.results.SessionResult`. ``toolkit connect``
(its batch, its plain prompt and its interactive prompt) and ``toolkit run``
are renderers over it: they say what happens through a :class:`SessionUI`
and, while commands run, a :class:`CommandsUI`. Nothing here prints.

A ``work`` function gets the running session and a
:class:`~toolkit.session.results.Tally` to count results into, and returns
the exit code it earned and why the session ends::

    async def work(session: TechnicianSession, tally: Tally) -> tuple[ExitCode, str]:
        return await run_batch(session, lines, ui, tally, stream=True)

    result = await run_session(request, ui, work)
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from toolkit.errors import ExitCode, ToolkitError, UsageError
from toolkit.protocol import Op
from toolkit.session.commands import Command, parse_checked
from toolkit.session.results import (
    COMPLETED,
    ENDED_BY_TECHNICIAN,
    OperationResult,
    SessionResult,
    Status,
    Tally,
    exit_code_of,
    worse,
)
from toolkit.text import printable

if TYPE_CHECKING:
    import asyncssh

    from toolkit.consent import Consent, Scope
    from toolkit.grants import Grant
    from toolkit.identity.store import Identity
    from toolkit.secrets import Secret
    from toolkit.session.client import ConnectionLost, SessionEnded
    from toolkit.session.technician import TechnicianSession
    from toolkit.tickets.attach import Attached, Synced
    from toolkit.transport.relay import RelayRoute
    from toolkit.transport.ssh import HostKeyCheck


@dataclass(frozen=True)
class Place:
    """Where the customer's agent is: HOST:PORT, or a rendezvous at a relay."""

    host: str
    port: int
    route: RelayRoute | None = None

    def shown(self, code: Secret | None) -> str:
        """The place as the technician reads it (a relay's rendezvous is named by the code)."""
        if self.route is not None and self.route.name is not None:
            return f"the agent {self.route.name} at the relay {self.route.address}"
        if self.route is not None and code is None:
            return f"the relay {self.route.address}"
        if self.route is not None:
            assert code is not None
            from toolkit.consent import nameplate_of

            return f"rendezvous {nameplate_of(code)} at the relay {self.route.address}"
        host, port = self.host, self.port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class SessionRequest:
    """One session to run: where, as whom, for which ticket, asking for what."""

    place: Place
    identity: Identity
    ticket: str  # checked (toolkit.tickets.base.check_ticket_id) by whoever builds this
    scopes: frozenset[Scope]
    #: The customer's code, given up front; None: ask it (SessionUI.ask_code), and again
    #: after a wrong one. A code given up front is never asked again: a script gets the refusal.
    code: Secret | None = None
    #: Trust for the transcript's verdict and the outbox's check before upload.
    allowed_signers: Path | None = None
    #: Work out the transcript's verdict before upload (SessionResult.verdict), as the
    #: ticket's comment states it; it costs a verification of the whole transcript.
    verdict: bool = False
    #: Consent given in advance (toolkit.grants): no code is given or asked for.
    grant: Grant | None = None
    #: Checks the agent's host key before anything is sent (required with a grant).
    host_key_check: HostKeyCheck | None = None
    #: False: the caller attaches (a fleet, every host's transcript at once): the session
    #: only puts its sealed transcript in the outbox, and does not retry the outbox first.
    attach: bool = True

    def __post_init__(self) -> None:
        if self.grant is not None and self.code is not None:
            raise UsageError("Give the customer's code or a grant, not both.")
        if self.grant is not None and self.host_key_check is None:
            raise UsageError(
                "A grant needs the agent's host key pinned.",
                hint="Give the agent's fingerprint with --host-key SHA256:...",
            )
        route = self.place.route
        if self.grant is not None and route is not None and route.name is None:
            raise UsageError(
                "A grant cannot reach an agent through a relay's rendezvous: that needs "
                "the customer's code.",
                hint="Connect to the agent's address, or its stable name at the relay.",
            )


@dataclass(frozen=True)
class Line:
    """One command of a batch (or typed at a prompt), with where it came from."""

    source: str  # the batch file's name, "stdin", or PROMPT_SOURCE
    number: int  # 1-based line number in the source
    command: Command

    @property
    def where(self) -> str:
        return f"{printable(self.source)}, line {self.number}"


#: The source of lines typed at a prompt.
PROMPT_SOURCE = "prompt"


class SessionUI(Protocol):
    """What the workflow asks of a person, or tells them, around the commands.

    Texts handed over come from peers and ticket systems: the implementation
    makes them printable (toolkit.text) before a terminal, except ``ticket_note``'s,
    which are already.
    """

    async def ask_code(self, *, again: bool = False) -> Secret:
        """The customer's code, typed; ``again`` after a wrong one."""
        ...

    def ticket_passphrase(self, *, confirm: bool = False) -> str:
        """The ticket credentials file's passphrase (tickets.credentials.Passphrases)."""
        ...

    def ticket_note(self, text: str) -> None:
        """A line about the ticket system: an outbox it could not try, an upload that failed."""
        ...

    def outbox_tried(self, synced: Sequence[Synced]) -> None:
        """Transcripts that waited in the outbox were tried once, at the start."""
        ...

    def connecting(self, place: str) -> None:
        """About to connect (again) to ``place``; the customer will be asked to approve."""
        ...

    def wrong_code(self, message: str) -> None:
        """The agent did not take the code, which will be asked again."""
        ...

    def consent_passed(self, host_key: str, granted: Sequence[str]) -> None:
        """Consent passed: the agent's host key fingerprint, the scopes granted."""
        ...

    def attached(self, attached: Attached, principal: str) -> None:
        """The sealed transcript is on its ticket; ``principal`` signed it."""
        ...

    def attach_failed(self, error: ToolkitError) -> None:
        """The transcript could not be attached: it waits in the outbox (or not even that)."""
        ...

    def finished(self, result: SessionResult) -> None:
        """The session is over; called also when it ended on an error, before that is raised."""
        ...


class CommandsUI(Protocol):
    """What the workflow tells a person while commands run (:func:`run_line`, :func:`run_batch`)."""

    def starting(self, line: Line) -> None:
        """A batch's next command is about to run."""
        ...

    def asking_customer(self, asking: str) -> None:
        """The agent asks the customer about the command running (once per command)."""
        ...

    def output(self, stream: int, data: bytes) -> None:
        """Output of a streamed command as it comes (protocol.STDOUT or STDERR)."""
        ...

    def result(self, result: OperationResult, line: Line | None) -> None:
        """One command's result (its streamed output already blanked)."""
        ...

    def session_lost(self, message: str) -> None:
        """The customer ended the session, or the connection dropped."""
        ...


#: Runs the session's commands: gets the session and a tally, returns the exit code it
#: earned and why the session ends (toolkit.session.results.COMPLETED, ...).
Work = Callable[["TechnicianSession", Tally], Awaitable[tuple[ExitCode, str]]]

INTERRUPTED = "interrupted by the technician (Ctrl-C)"
STOPPED = "the technician's toolkit stopped on an error"
UNRECORDABLE = "the technician's transcript could not be written"


async def consent(
    request: SessionRequest, ui: SessionUI
) -> tuple[asyncssh.SSHClientConnection, Consent, Secret | None]:
    """Connect and pass consent; the code that passed it, too (None: a grant did).

    A code typed here is asked again while it has tries left. The identity
    stays unlocked meanwhile (as ssh asks again for a password). A code given
    in the request is not asked again: a script gets the refusal. With a grant
    nothing is asked: one attempt, and its refusal is raised.
    """
    from toolkit.consent import WrongCode
    from toolkit.consent._code import DEFAULT_TRIES
    from toolkit.transport.ssh import ConsentAsk, connect

    place, code = request.place, request.code
    if request.grant is not None:
        ask = ConsentAsk(
            request.identity,
            request.ticket,
            request.scopes,
            None,
            grant=request.grant,
            host_key_check=request.host_key_check,
        )
        ui.connecting(place.shown(None))
        if place.route is not None:  # a service's stable name at a relay (toolkit serve)
            from toolkit.transport.relay import connect_through

            conn, passed = await connect_through(place.route, ask)
        else:
            conn, passed = await connect(place.host, place.port, ask)
        return conn, passed, None
    typed = code is None
    if code is None:
        code = await ui.ask_code()
    # The tries left come from the agent, unauthenticated: a fake agent could claim
    # many and so win a guess at the real code from each retype. One run asks at most
    # as often as a real code can be tried (docs/consent.md).
    retypes = DEFAULT_TRIES - 1
    while True:
        ask = ConsentAsk(request.identity, request.ticket, request.scopes, code)
        ui.connecting(place.shown(code))
        try:
            if place.route is not None:
                from toolkit.transport.relay import connect_through

                conn, passed = await connect_through(place.route, ask)
            else:
                conn, passed = await connect(place.host, place.port, ask)
        except WrongCode as exc:
            if not typed or exc.tries_left <= 0 or retypes <= 0:
                raise
            retypes -= 1
            ui.wrong_code(exc.message)
            code = await ui.ask_code(again=True)
            continue
        return conn, passed, code


async def run_session(
    request: SessionRequest, ui: SessionUI, work: Work, *, ctrl_c_ends: bool = True
) -> SessionResult:
    """One whole session: outbox retry, consent, ``work``, end, seal, verdict, attach.

    ``ctrl_c_ends``: Ctrl-C (SIGINT) ends the session with exit code 130 (a
    batch); without it, ``work`` handles Ctrl-C itself (the interactive prompt
    cancels the running command). A transcript that could not be written
    ends the session whatever else did, is not attached, and is raised after
    ``ui.finished``; so is any other error ``work`` raised.
    """
    from toolkit.tickets.attach import sync_quietly
    from toolkit.transport._asyncssh import load

    if request.attach:
        synced = sync_quietly(None, request.allowed_signers, ui.ticket_note)
        if synced:
            ui.outbox_tried(synced)
    load()  # before the modules below import it
    from toolkit.consent import scope_names
    from toolkit.session.technician import TechnicianSession

    conn, passed, code = await consent(request, ui)
    ui.consent_passed(passed.host_key_fingerprint, scope_names(passed.granted))
    session = await TechnicianSession.start(
        conn, passed, request.identity, request.place.shown(code)
    )
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupted: list[bool] = []

    def interrupt() -> None:
        interrupted.append(True)
        if main is not None:
            main.cancel()

    if ctrl_c_ends:
        loop.add_signal_handler(signal.SIGINT, interrupt)
    tally = Tally()
    worst = ExitCode.OK
    reason = STOPPED  # unless work returns
    try:
        worst, reason = await work(session, tally)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        worst, reason = ExitCode.INTERRUPTED, INTERRUPTED
    finally:
        if ctrl_c_ends:  # else the handler is someone else's (a fleet's runner): leave it
            loop.remove_signal_handler(signal.SIGINT)
        failure = session.recorder.failure
        if failure is not None:  # whatever else the session ended with
            reason = UNRECORDABLE
        path = await session.end(reason)
        verdict = _verdict(path, request.allowed_signers) if request.verdict else None
        attached: Attached | None = None
        attach_error: ToolkitError | None = None
        if session.recorder.failure is None:  # an unsealed transcript is not attached
            if request.attach:
                attached, attach_error = _attach(request, session, ui)
            else:
                attach_error = await _enqueue(request, session, ui)
        result = SessionResult(
            session=session.recorder.header.session_id,
            ticket=request.ticket,
            transcript=path,
            verdict=verdict,
            ended=reason,
            ok=tally.ok,
            failed=tally.failed,
            refused=tally.refused,
            exit_code=int(failure.exit_code if failure is not None else worst),
            attached=attached,
            attach_error=attach_error,
        )
        ui.finished(result)
    if session.recorder.failure is not None:
        raise session.recorder.failure  # whatever the session ended with, this is the cause
    return result


def _verdict(path: Path, allowed_signers: Path | None) -> str | None:
    """The transcript's verdict before upload, as the ticket's comment states it."""
    from toolkit.tickets.summary import verdict

    try:
        report, _ = verdict(path, allowed_signers)
    except ToolkitError:
        return None
    return report.verdict.value


def _attach(
    request: SessionRequest, session: TechnicianSession, ui: SessionUI
) -> tuple[Attached | None, ToolkitError | None]:
    """Through the outbox onto the ticket (docs/tickets.md); if that fails, it waits there."""
    from toolkit.tickets.attach import attach_transcript

    # The key that sealed the transcript also signs a SHA256SUMS manifest when one is needed.
    recorder = session.recorder
    try:
        attached = attach_transcript(
            request.ticket,
            session.path,
            recorder.signer,
            recorder.sha256,
            passphrase=ui.ticket_passphrase,
            allowed_signers=request.allowed_signers,
            note=ui.ticket_note,
        )
    except ToolkitError as exc:
        ui.attach_failed(exc)
        return None, exc
    ui.attached(attached, session.consent.email)
    return attached, None


async def _enqueue(
    request: SessionRequest, session: TechnicianSession, ui: SessionUI
) -> ToolkitError | None:
    """Only into the outbox, for the caller to attach (``request.attach`` False); the error.

    Writing and syncing the entry runs on a worker thread: the other sessions
    of a fleet go on meanwhile.
    """
    from toolkit.tickets.attach import enqueuer

    recorder = session.recorder
    try:
        step = enqueuer(
            request.ticket,
            session.path,
            recorder.signer,
            recorder.sha256,
            passphrase=ui.ticket_passphrase,
            note=ui.ticket_note,
        )
        await asyncio.to_thread(step)
    except ToolkitError as exc:
        ui.attach_failed(exc)
        return exc
    return None


# -- running commands ---------------------------------------------------------------------


class _Asking:
    """Tells the UI once per command that the customer is being asked about it.

    The agent's ``asking`` notice (docs/protocol.md) comes when the customer's
    screen asks about this command; until the answer nothing else comes, so a
    batch would look stuck for as long as the customer takes.
    """

    def __init__(self, ui: CommandsUI) -> None:
        self._ui = ui
        self._said = False

    def notice(self, request_id: int, notice: dict[str, Any]) -> None:
        asking = notice.get("asking")
        if isinstance(asking, str) and not self._said:
            self._said = True
            self._ui.asking_customer(asking)


async def run_line(
    session: TechnicianSession, line: Line, ui: CommandsUI, *, stream: bool
) -> OperationResult:
    """One command, its result shown; ``stream``: a run's or read's output as it comes.

    Raises SessionEnded or ConnectionLost when the session is gone.
    """
    command = line.command
    streaming = stream and command.op in (Op.RUN, Op.READ)
    session.client.on_notice = _Asking(ui).notice
    try:
        result = await session.execute(command, ui.output if streaming else None)
    finally:
        session.client.on_notice = None
    if streaming and result.status is Status.OK:
        result = replace(result, stdout=b"", content=b"", stderr=b"")
    ui.result(result, line)
    return result


def session_lost(
    exc: SessionEnded | ConnectionLost, worst: ExitCode, ui: CommandsUI
) -> tuple[ExitCode, str]:
    """The exit code and reason when the customer ended the session (3, unless a worse code
    was earned) or the connection dropped (4)."""
    from toolkit.session.client import SessionEnded

    ui.session_lost(exc.message)
    if isinstance(exc, SessionEnded):
        return worse(worst, ExitCode.REFUSED), exc.message
    return ExitCode.NETWORK, exc.message


async def run_batch(
    session: TechnicianSession,
    lines: Sequence[Line],
    ui: CommandsUI,
    tally: Tally,
    *,
    stream: bool,
) -> tuple[ExitCode, str]:
    """Run ``lines`` (from :func:`parse_batch`) in order to their end, or to ``exit``.

    Every result is counted; the exit code is the worst result's: refused (3)
    over failed (1) over ok (0).
    """
    from toolkit.session.client import ConnectionLost, SessionEnded

    worst = ExitCode.OK
    try:
        for line in lines:
            ui.starting(line)
            if line.command.name == "exit":
                return worst, ENDED_BY_TECHNICIAN
            result = await run_line(session, line, ui, stream=stream)
            tally.count(result)
            worst = worse(worst, exit_code_of(result.status))
    except (SessionEnded, ConnectionLost) as exc:
        return session_lost(exc, worst, ui)
    return worst, COMPLETED


def parse_batch(text: str, source: str) -> list[Line]:
    """Every command of a batch, checked before anything connects (UsageError naming the line).

    A ``shell`` is refused: it needs the interactive prompt.
    """
    lines = []
    for number, text_line in enumerate(text.splitlines(), 1):
        try:
            command = parse_checked(text_line)
        except UsageError as exc:
            raise UsageError(f"{source}, line {number}: {exc.message}", hint=exc.hint) from None
        if command is None:
            continue
        if command.op is Op.SHELL:
            raise UsageError(
                f"{source}, line {number}: `shell` cannot run in a batch: it needs the "
                "interactive prompt (a terminal on stdin and stdout).",
                hint="Remove that line, or run toolkit connect without --batch on a terminal "
                "and type `shell` at the prompt.",
            )
        lines.append(Line(source, number, command))
    return lines


__all__ = [
    "INTERRUPTED",
    "PROMPT_SOURCE",
    "STOPPED",
    "UNRECORDABLE",
    "CommandsUI",
    "Line",
    "Place",
    "SessionRequest",
    "SessionUI",
    "Work",
    "consent",
    "parse_batch",
    "run_batch",
    "run_line",
    "run_session",
    "session_lost",
]
