"""One consented session on the agent: the protocol channel, the operations, the customer's copy.

:class:`SessionChannel` is the SSH side (accepts only the session subsystem,
frames bytes, applies backpressure); :class:`AgentSession` serves requests
through :class:`~toolkit.agent.operations.Operations`, records each one in the
customer's transcript (sealed with the agent's host key), and ends the
session exactly once, for whatever reason comes first.

Every message costs a bounded amount, whatever the technician does
(docs/protocol.md, "Bounds"): at most MAX_IN_FLIGHT requests are served at
once; what the agent rejects (malformed, busy, a cancel of nothing in flight,
a refused channel or request) counts against MAX_REJECTS; and answers wait for
room in the channel's write buffer (SEND_HIGH), while the agent reads no
more frames from a technician who does not read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh
from asyncssh.misc import map_handler_name

from toolkit import __version__, paths
from toolkit.agent.operations import Operations, Outcome
from toolkit.agent.shell import AgentShell, ShellError
from toolkit.consent import Consent, Scope, scope_names
from toolkit.errors import TranscriptWriteError
from toolkit.grants.acceptance import finish_use
from toolkit.protocol import (
    KIND_BAD,
    KIND_DATA,
    SUBSYSTEM,
    Body,
    FrameDecoder,
    Op,
    ProtocolError,
    Request,
    Response,
    parse_request,
    request_id_of,
)
from toolkit.transcript.models import AGENT_PRINCIPAL_PREFIX
from toolkit.transcript.recorder import Recorder, keep_checkpointing, new_header

if TYPE_CHECKING:
    from toolkit.agent.server import Agent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionEnd:
    reason: str
    transcript: Path | None  # the customer's sealed copy, when a session ran
    #: Why the customer's copy stopped short, unsealed (a full disk), if it did.
    failure: TranscriptWriteError | None = None


#: Requests served at once; more get a "busy" error rather than queueing without bound.
MAX_IN_FLIGHT = 8
#: Rejected messages (malformed, busy, a cancel of nothing in flight) and refused
#: channels or channel requests a session tolerates before it ends: a broken or
#: hostile client must not grow the customer's transcript without bound.
MAX_REJECTS = 200
#: Bytes of answers the agent holds for a technician beyond what its SSH window took:
#: past it, answers wait and the agent reads no more frames until it drains to SEND_LOW.
SEND_HIGH = 64 * 1024
SEND_LOW = 16 * 1024
#: How long the customer's end waits, at most, for the "ended" message to leave. It
#: waits at all only when the technician's SSH window is full, so far behind reading.
END_GRACE = 0.25
AGENT_PRINCIPAL = "toolkit agent"
#: Operations whose line the customer's screen leaves out: the session's end is said
#: once, by the session itself (how it ended, in the customer's words).
UNSAID_OPS = frozenset({Op.END})
#: Approval answers the customer saw as they came (the question said "you declined ..."
#: or "no answer in time"): the refusal that follows is not said again.
SHOWN_ANSWERS = frozenset({"declined", "no answer"})


def for_the_customer(reason: str) -> str:
    """How a session ended, on the customer's screen: once, and to the customer.

    The transcripts keep ``reason`` as it is ("the customer ended the session (q)");
    the customer reads "you ended the session (q)".
    """
    for theirs, yours in (("the customer's ", "your "), ("the customer ", "you ")):
        if reason.startswith(theirs):
            reason = yours + reason.removeprefix(theirs)
    said = " ended the session" in reason or "the session ended" in reason
    return reason if said else f"session ended: {reason}"


#: Channel requests the protocol channel refuses, and records. asyncssh would accept
#: env (keeping every variable), window-change, signal and xon-xoff without asking the
#: session; x11 and agent forwarding it refuses unrecorded.
REFUSED_REQUESTS = {
    "env": "an environment variable",
    "window-change": "a terminal size change",
    "signal": "a signal",
    "break": "a break",
    "xon-xoff": "flow control",
    "x11-req": "X11 forwarding",
    "auth-agent-req@openssh.com": "agent forwarding",
}


class SessionChannel(asyncssh.SSHServerSession[bytes]):
    """The SSH channel of a session: the subsystem only, never a shell, exec or PTY.

    Flow control: when answers have no room (the channel's send buffer is over
    SEND_HIGH, or the connection's socket buffer is full), writers wait and the
    channel stops reading, so what the technician sends waits in its SSH window
    instead of in the agent. Frames decoded but not yet served (at most one
    packet's) wait here, in order.
    """

    def __init__(self, session: AgentSession) -> None:
        self._session = session
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._decoder = FrameDecoder()
        self._frames: deque[tuple[int, Body]] = deque()
        self._full: set[str] = set()  # why answers wait: "channel", "socket"
        self._writable = asyncio.Event()
        self._writable.set()
        self._room = asyncio.Event()  # the channel's own buffer is under its high-water mark
        self._room.set()
        self.reading = True
        self.closed = False

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan
        chan.set_write_buffer_limits(SEND_HIGH, SEND_LOW)
        # asyncssh looks a request's handler up on the channel by name, and some of these
        # it handles without a session callback: each gets one that refuses and records.
        for name, what in REFUSED_REQUESTS.items():
            setattr(chan, f"_process_{map_handler_name(name)}_request", self._refuser(name, what))

    def _refuser(self, name: str, what: str) -> Callable[[object], bool]:
        def refuse(packet: object) -> bool:
            self._session.refuse_channel(f"{what} ({name})")
            return False  # a FAILURE reply, when the technician wants one

        return refuse

    def pty_requested(self, term_type: str, term_size: Any, term_modes: Any) -> bool:
        self._session.refuse_channel("a PTY")
        return False

    def shell_requested(self) -> bool:
        self._session.refuse_channel("a shell")
        return False

    def exec_requested(self, command: str) -> bool:
        self._session.refuse_channel("a command channel (exec)")
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem != SUBSYSTEM:
            self._session.refuse_channel(f"the subsystem {subsystem[:64]!r}")
            return False
        # Claimed here, not in session_started: two channels opened at once must
        # not both get the subsystem.
        if not self._session.attach(self):
            return False
        assert self._chan is not None
        self._watch_socket(self._chan.get_connection())
        return True

    def _watch_socket(self, conn: Any) -> None:
        """Make a full socket one more reason for answers to wait.

        asyncssh ignores its transport's pause_writing: a technician who stops
        reading the TCP connection (with a large SSH window) would otherwise
        grow the socket's buffer without bound. The transport calls these on
        the connection object, so wrapping them there is enough.
        """
        pause, resume = conn.pause_writing, conn.resume_writing

        def paused() -> None:
            pause()
            self._wait("socket")

        def resumed() -> None:
            resume()
            self._go("socket")

        conn.pause_writing, conn.resume_writing = paused, resumed

    @property
    def attached(self) -> bool:
        return self._session.channel is self

    @property
    def writable(self) -> bool:
        """Answers have room (else they wait, and the channel is not read)."""
        return self._writable.is_set()

    @property
    def buffered(self) -> int:
        """Bytes written to the channel that its SSH window has not taken yet."""
        return self._chan.get_write_buffer_size() if self._chan is not None else 0

    # -- in ----------------------------------------------------------------------

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if not self.attached:
            return
        self._frames.extend(self._decoder.feed(data))
        self._serve_frames()

    def _serve_frames(self) -> None:
        """Hand frames to the session while answers have room; then read on, or not."""
        while self._frames and self._writable.is_set() and not self.closed:
            kind, body = self._frames.popleft()
            self._session.on_frame(kind, body)
        self._read(not self._frames and self._writable.is_set())

    def _read(self, on: bool) -> None:
        if on == self.reading or self._chan is None or self.closed:
            return
        self.reading = on
        if on:
            self._chan.resume_reading()  # may deliver what asyncssh held, at once
        else:
            self._chan.pause_reading()

    def eof_received(self) -> bool:
        if self.attached:
            asyncio.get_running_loop().create_task(
                self._session.end("the technician closed the session")
            )
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._frames.clear()
        self._writable.set()
        self._room.set()
        if not self.attached:
            return  # a refused channel closing ends nothing
        why = f"the connection was lost: {exc}" if exc else "the technician disconnected"
        asyncio.get_running_loop().create_task(self._session.end(why))

    # -- out ---------------------------------------------------------------------

    def pause_writing(self) -> None:
        self._room.clear()
        self._wait("channel")

    def resume_writing(self) -> None:
        self._room.set()
        self._go("channel")

    def _wait(self, why: str) -> None:
        if not self._full:
            self._writable.clear()
            self._read(False)  # at once: asyncssh may be delivering a run of packets
            self._session.answers_wait(True)
        self._full.add(why)

    def _go(self, why: str) -> None:
        if why not in self._full:
            return
        self._full.discard(why)
        if not self._full and not self.closed:
            self._writable.set()
            self._session.answers_wait(False)
            # Not from inside asyncssh's callback: the frames waiting are served next turn.
            asyncio.get_running_loop().call_soon(self._serve_frames)

    def write_now(self, frame: bytes) -> None:
        """Write one small frame without waiting for room: an answer to the frame being
        served (frames are served only while there is room), a shell event, the end."""
        if not self.closed and self._chan is not None:
            with contextlib.suppress(BrokenPipeError):  # the technician closed it just now
                self._chan.write(frame)

    async def send(self, frame: bytes) -> None:
        """Write one frame once there is room for it (the first writer to get room may
        fill it again: each waiter looks again)."""
        while not self._writable.is_set():
            await self._writable.wait()
        if self.closed or self._chan is None:
            raise ConnectionResetError("the session channel is closed")
        self._chan.write(frame)

    async def drained(self, timeout: float) -> None:
        """Until what was written has left for the technician, or ``timeout`` passed."""
        if self._chan is None or self.closed:
            return
        self._chan.set_write_buffer_limits(0, 0)  # from now on, room means empty
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout)

    def close(self) -> None:
        if self._chan is not None and not self.closed:
            self._chan.close()


class AgentSession:
    """The session a consent opened: serves requests, records them, ends once."""

    def __init__(
        self, agent: Agent, consent: Consent, connection: asyncssh.SSHServerConnection
    ) -> None:
        self.agent = agent
        self.consent = consent
        self.connection = connection
        self.channel: SessionChannel | None = None
        self.started = time.monotonic()
        settings = agent.settings
        granted = scope_names(consent.granted)
        header = new_header(
            consent.name,
            consent.email,
            agent.host_key.signer,
            consent.ticket,
            scope=granted,
            agent_host_key=agent.host_key.fingerprint,
            customer_host=settings.hostname,
            technician_fingerprint=consent.fingerprint,
            signer_principal=(AGENT_PRINCIPAL, f"{AGENT_PRINCIPAL_PREFIX}{settings.hostname}"),
        )
        self.id = header.session_id
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"{stamp}-{paths.name_part(consent.ticket)}-{self.id[:8]}.cast"
        self.path: Path = agent.transcripts / name
        self.recorder = Recorder.create(self.path, header, agent.host_key.signer)
        self.recorder.event("consent", **consent.as_event())
        self._write_trust(header.signed_by.email)
        self.operations = Operations(
            policy=settings.policy,
            scopes=frozenset(granted),
            catalogue=settings.catalogue,
            approve_fix=settings.approve_fix,
            ask_out_of_scope=settings.ask_out_of_scope,
            on_approval=self._record_approval,
            send=self._send,
            grant=consent.grant.grant if consent.grant is not None else None,
            revoked=settings.grants.ledger.revoked if settings.grants is not None else None,
            info={
                "agent": __version__,
                "host": settings.hostname,
                "session": self.id,
                "granted": granted,
                "procedures": settings.catalogue.describe(settings.policy.procedures),
                "commands": {
                    scope: [str(t) for t in templates]
                    for scope, templates in settings.policy.commands.items()
                },
                "max_bytes": settings.policy.max_bytes,
            },
        )
        self._tasks: set[asyncio.Task[None]] = set()  # requests served
        self._ending: set[asyncio.Task[None]] = set()  # end() called from callbacks
        self._serving: dict[int, asyncio.Task[None]] = {}  # requests in flight, by id
        self._cancelled: set[int] = set()  # ids the technician cancelled, still in flight
        self.shell: AgentShell | None = None  # the armed or running shell (one at a time)
        self._ticker = asyncio.get_running_loop().create_task(keep_checkpointing(self.recorder))
        self.recorder.on_failure = self._unrecordable  # its writes never raise it here
        self._ended = False
        self._rejects = 0
        #: Requests whose approval the customer answered no (or not at all), as asked.
        self._shown_answers: set[int] = set()
        agent.observer.say(
            f"session started: {consent.name} <{consent.email}> {consent.fingerprint}, "
            f"ticket {consent.ticket}, granted {', '.join(granted)}"
        )

    def _write_trust(self, principal: str) -> None:
        """An allowed_signers line for the host key, so the customer can verify their copy."""
        from toolkit.identity.keys import public_line
        from toolkit.transcript.models import NAMESPACES

        line = (
            f'{principal} namespaces="{",".join(NAMESPACES)}" '
            f"{public_line(self.agent.host_key.blob)}\n"
        )
        paths.atomic_write(self.trust_path, line.encode(), 0o644)

    @property
    def trust_path(self) -> Path:
        return self.path.with_name(self.path.name + ".allowed_signers")

    def attach(self, channel: SessionChannel) -> bool:
        """Make ``channel`` the session's one protocol channel; False if there is one."""
        if self.channel is not None or self._ended:
            self.refuse_channel("a second session channel")
            return False
        self.channel = channel
        return True

    def refuse_channel(self, what: str) -> None:
        """Record a channel or request the agent never offers; the session goes on.

        Each counts against MAX_REJECTS, as a rejected message does: a flood of them
        must not grow the customer's transcript without bound.
        """
        if not self._rejected():
            return
        message = f"refused: {what} is not offered"
        if not self.recorder.closed:
            self.recorder.event("refusal", op="channel", ok=False, error="refused", message=message)
        self.agent.observer.say(message)

    def answers_wait(self, waiting: bool) -> None:
        """The protocol channel has no room for answers (or has again): while it has none,
        the shell takes no input, whose verdicts would have to go there."""
        if self.shell is not None:
            self.shell.hold_input(waiting)

    @property
    def answers_waiting(self) -> bool:
        return self.channel is not None and not self.channel.writable

    # -- requests --------------------------------------------------------------

    def on_frame(self, kind: int, body: Body) -> None:
        if self._ended or self.recorder.closed:  # nothing is served unrecorded
            return
        if kind == KIND_BAD:
            self._reject(0, "malformed", bytes(body).decode(errors="replace"))
        elif kind == KIND_DATA:
            self._reject(0, "malformed", "the agent accepts no data frames")
        else:
            try:
                request = parse_request(body)
            except ProtocolError as exc:
                self._reject(request_id_of(body), "malformed", exc.message)
                return
            if request.id in self._serving:
                # Its data frames and response could not be told apart from the first one's.
                message = f"request id {request.id} is already in flight"
                self._reject(request.id, "malformed", message)
                return
            if request.op == Op.CANCEL:
                self._cancel(request)
                return
            if len(self._serving) >= MAX_IN_FLIGHT:
                self._reject(request.id, "busy", f"at most {MAX_IN_FLIGHT} requests at once")
                return
            task = asyncio.get_running_loop().create_task(self._serve(request))
            self._serving[request.id] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: self._serving.pop(request.id, None))

    def _cancel(self, request: Request) -> None:
        """Stop a request in flight; it answers ``cancelled``, the cancel answers at once.

        A cancel of anything else (an id that answered, never ran, or was cancelled
        already) is rejected, so that cancels cost what any message costs.
        """
        target = request.args["target"]
        task = self._serving.get(target)
        if task is None or task.done() or target in self._cancelled:
            self._reject(request.id, "unknown", f"request {target} is not in flight")
            return
        self._cancelled.add(target)
        task.cancel()
        answer = Response(request.id, True, {"cancelled": True})
        record = {"id": request.id, "op": Op.CANCEL, "target": target, "cancelled": True}
        self._record(request, Outcome(answer, record, f"the technician cancelled request {target}"))
        self.write_now(answer.to_frame())

    def write_now(self, frame: bytes) -> None:
        if self.channel is not None:
            self.channel.write_now(frame)

    def _rejected(self) -> bool:
        """Count one rejected message or refused request; False past MAX_REJECTS, and
        the first time past it, the session ends."""
        self._rejects += 1
        if self._rejects == MAX_REJECTS + 1:
            why = f"the technician's client sent over {MAX_REJECTS} bad or excess messages"
            self._end_soon(why)
        return self._rejects <= MAX_REJECTS

    def _reject(self, request_id: int, code: str, message: str) -> None:
        if not self._rejected():
            return
        message = message[:500]
        self.recorder.event("protocol_error", id=request_id, error=code, message=message)
        self.agent.observer.say(f"rejected a request ({code}): {message}")
        # Frames are served only while the channel has room: the answer is written at once.
        self.write_now(Response(request_id, False, error=code, message=message).to_frame())

    def _end_soon(self, why: str) -> None:
        """End from a callback, telling the technician why. Kept apart from the tasks
        end() cancels: another end() already under way makes this one a no-op."""
        task = asyncio.get_running_loop().create_task(self.end(why, notify=True))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _serve(self, request: Request) -> None:
        try:
            if request.op == Op.SHELL:
                outcome = await self._serve_shell(request)
            else:
                outcome = await self.operations.perform(request)
            await self._send(outcome.response.to_frame())
        except ConnectionError:
            return
        except asyncio.CancelledError:
            if self._ended or request.id not in self._cancelled:
                raise
            self._cancelled.discard(request.id)
            message = "cancelled by the technician"
            outcome = Outcome(
                Response(request.id, False, error="cancelled", message=message),
                {"id": request.id, "op": request.op, **request.args, "ok": False,
                 "error": "cancelled", "message": message},
                f"{request.op} cancelled by the technician",
            )  # fmt: skip
            with contextlib.suppress(ConnectionError):
                await self._send(outcome.response.to_frame())
        except Exception:  # a bug must not take the agent down; the technician hears of it
            logger.exception("operation %s failed", request.op)
            outcome = Outcome(
                Response(request.id, False, error="failed", message="the agent hit an error"),
                {"id": request.id, "op": request.op, "ok": False, "error": "failed"},
                f"{request.op} failed inside the agent",
            )
            with contextlib.suppress(ConnectionError):
                await self._send(outcome.response.to_frame())
        self._record(request, outcome)
        if request.op == Op.END:
            # One line, single spaces: the customer's copy shows it in every report.
            reason = " ".join(str(request.args.get("reason") or "").split())[:200]
            prefix = "the technician ended the session"
            if reason.lower().startswith(prefix):
                await self.end(reason)
            else:
                await self.end(f"{prefix}{': ' + reason if reason else ''}")

    async def _serve_shell(self, request: Request) -> Outcome:
        """A PTY on the next session channel, only with the shell scope; answered at its end."""
        record: dict[str, Any] = {"id": request.id, "op": Op.SHELL}
        if Scope.SHELL not in self.consent.granted:
            message = "refused: a shell needs the shell scope, which the customer did not grant"
            return Outcome(
                Response(request.id, False, error="refused", message=message),
                {**record, "ok": False, "error": "refused", "message": message},
                message,
            )
        if self.shell is not None:
            message = "a shell is already open in this session"
            return Outcome(
                Response(request.id, False, error="failed", message=message),
                {**record, "ok": False, "error": "failed", "message": message},
                f"failed: {message}",
            )
        shell = self.shell = AgentShell(self, request.id)
        try:
            result = await shell.run()
        except ShellError as exc:
            return Outcome(
                Response(request.id, False, error="failed", message=str(exc)),
                {**record, **shell.result(None), "ok": False, "error": "failed"},
                f"failed: {exc}",
            )
        finally:
            await shell.close()
            self.shell = None
            self.agent.observer.shell_ended()
        return Outcome(
            Response(request.id, True, result),
            {**record, **result},
            f"shell ended (exit {result['exit_status']})",
        )

    def shell_channel(self) -> AgentShell | None:
        """The armed shell a new session channel belongs to, if the consent granted one."""
        shell = self.shell
        if self._ended or shell is None or Scope.SHELL not in self.consent.granted:
            return None
        return shell if shell.awaiting_channel else None

    def _record_approval(self, fields: dict[str, Any]) -> None:
        """The customer's answer to a fix, as it comes (docs/transcript-format.md)."""
        if fields.get("answer") in SHOWN_ANSWERS:
            self._shown_answers.add(fields["request"])
        if not self.recorder.closed:
            self.recorder.event("approval", **fields)

    def _record(self, request: Request, outcome: Outcome) -> None:
        if self.recorder.closed:
            return
        fields = dict(outcome.record)
        if request.op == Op.HELLO:
            fields["technician_session"] = request.args.get("session")
        kind = "refusal" if outcome.response.error == "refused" else "operation"
        fields.setdefault("ok", outcome.response.ok)
        self.recorder.event(kind, **fields)
        # The customer's screen says each fact once: the session's end has its own line,
        # and a no (or no answer) was shown as the customer gave it.
        answered = request.id in self._shown_answers and not outcome.response.ok
        self._shown_answers.discard(request.id)
        if outcome.summary and request.op not in UNSAID_OPS and not answered:
            self.agent.observer.say(outcome.summary)

    def _unrecordable(self, failure: TranscriptWriteError) -> None:
        """The customer's copy cannot be written (a full disk): no session goes on unrecorded.

        Nothing is printed here: the customer's screen may be a file on that same disk;
        share shows the error once the session has ended (SessionEnd.failure).
        """
        self._end_soon("the customer's transcript could not be written, so the session ended")

    async def _send(self, frame: bytes) -> None:
        if self.channel is None:
            raise ConnectionResetError("no session channel")
        await self.channel.send(frame)

    # -- the end ---------------------------------------------------------------

    async def end(self, reason: str, *, notify: bool = False) -> None:
        """End once: stop operations, tell the technician (``notify``), seal, disconnect.

        Within about END_GRACE whatever the technician does: the customer's copy is
        sealed first, and the "ended" message waits that long at most for a
        technician who does not read.
        """
        if self._ended:
            return
        self._ended = True
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        self._ticker.cancel()
        if self.shell is not None:  # cut off by the end: its end is recorded all the same
            self.shell.session_ended()
        channel = self.channel
        if notify and channel is not None:
            channel.write_now(Response(0, False, error="ended", message=reason).to_frame())
        if not self.recorder.closed:
            with contextlib.suppress(TranscriptWriteError):  # kept in recorder.failure
                self.recorder.close(reason)
        if notify and channel is not None:
            await channel.drained(END_GRACE)
        if channel is not None:
            channel.close()
        self.connection.close()
        self.agent.observer.say(for_the_customer(reason))
        finish_use(self.agent.settings.grants, self.consent, reason, self.path)
        self.agent.session_ended(self, SessionEnd(reason, self.path, self.recorder.failure))


__all__ = [
    "AGENT_PRINCIPAL",
    "MAX_IN_FLIGHT",
    "MAX_REJECTS",
    "SEND_HIGH",
    "AgentSession",
    "SessionChannel",
    "SessionEnd",
]
