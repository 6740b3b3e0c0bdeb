"""The granted shell, technician side: a PTY channel, recorded as the agent judges input.

:meth:`ShellClient.open` sends the ``shell`` request, waits for the agent's
``ready``, then opens a second SSH session channel with a PTY (``pty-req``,
``shell``). Output is recorded (``o``) and handed to ``on_output`` as it
arrives. Input goes out at once, but is recorded (``i``) only when the
agent's verdict for those bytes says the PTY echoed them, *and* the
characters came back in the output this side received (toolkit.protocol.echo,
checked here, so that no agent can have the technician's typing recorded
without showing it): until both are known it waits here, and whatever lacks
either when the shell ends is not recorded. So the technician's copy
withholds what the customer's copy withholds (docs/transcript-format.md,
"Terminal input and echo").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncssh

from toolkit.errors import PolicyRefused, TransportError
from toolkit.protocol import SESSION_ENDED, SHELL_EVENTS, Op, Response
from toolkit.protocol.echo import characters
from toolkit.session.client import OnData, Reply

if TYPE_CHECKING:
    from collections.abc import Callable

    from toolkit.session.technician import TechnicianSession

WINDOW = 2 * 1024 * 1024
MAX_PACKET = 32 * 1024
READY_TIMEOUT = 15.0
#: How long this side waits to see typed characters come back before it withholds them
#: (the echo normally arrives before the agent's verdict: same connection, sent first).
LOCAL_WINDOW = 1.0
#: Output kept to look for echoes in.
OUTPUT_LOG = 256 * 1024
#: How long closing waits for the agent's account of the shell.
CLOSE_TIMEOUT = 5.0


@dataclass
class _Check:
    """Bytes the agent says it recorded, until this side has seen them echoed."""

    data: bytes
    mark: int  # the output offset when they were typed: their echo comes after it
    deadline: float
    seen: bool | None  # None: not yet


def _in_order(needed: bytes, output: bytes | bytearray, start: int) -> bool:
    """Whether ``needed`` appears in ``output[start:]`` in order (other bytes between)."""
    if start < 0:
        return False  # the output it came back in is no longer kept
    pos = start
    for byte in needed:
        pos = output.find(byte, pos)
        if pos < 0:
            return False
        pos += 1
    return True


class _Channel(asyncssh.SSHClientSession[bytes]):
    def __init__(self, shell: ShellClient) -> None:
        self._shell = shell

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self._shell._output(data)

    def exit_status_received(self, status: int) -> None:
        self._shell.exit_status = status

    def connection_lost(self, exc: Exception | None) -> None:
        self._shell._channel_closed()


class ShellClient:
    """A running shell. Build it with :meth:`open`; end it with :meth:`close`."""

    def __init__(
        self, session: TechnicianSession, on_output: Callable[[bytes], None] | None
    ) -> None:
        self.session = session
        self._on_output = on_output
        self._sent = bytearray()  # typed, waiting for the agent's verdict
        self._marks: deque[int] = deque()  # per byte of _sent: output received before it
        self._output_log = bytearray()  # recent output, to look for echoes in
        self._log_start = 0  # the output offset of _output_log[0]
        self._output_total = 0
        self._checks: deque[_Check] = deque()  # kept by the agent, waiting to be seen here
        self._expiry: asyncio.TimerHandle | None = None
        self._events = bytearray()  # a partial SHELL_EVENTS line
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = asyncio.Event()
        self._last_recorded = True
        self._chan: asyncssh.SSHClientChannel[bytes] | None = None
        self._request: asyncio.Task[Reply] | None = None
        self.exit_status: int | None = None
        self.withheld_bytes = 0
        self.result: Response | None = None
        self._recorded_end = False

    @classmethod
    async def open(
        cls,
        session: TechnicianSession,
        *,
        term: str,
        width: int,
        height: int,
        on_output: Callable[[bytes], None] | None = None,
    ) -> ShellClient:
        """Ask for the shell; PolicyRefused without the scope, TransportError if it fails."""
        shell = cls(session, on_output)
        session.recorder.output(b"$ shell\r\n")
        sink: OnData = shell._event
        shell._request = asyncio.ensure_future(session.client.request(Op.SHELL, on_data=sink))
        shell._request.add_done_callback(shell._answered)
        waiters: set[asyncio.Future[Any]] = {shell._ready, shell._request}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not shell._ready.done() or shell._ready.cancelled():
            reply = shell._request.result()  # raises SessionEnded/ConnectionLost
            shell._record_end(reply.response)
            message = reply.response.message or "the agent did not start a shell"
            if reply.response.error == "refused":
                raise PolicyRefused(message)
            raise TransportError(f"No shell: {message}")
        try:
            chan, _ = await session.conn.create_session(
                lambda: _Channel(shell),
                term_type=term,
                term_size=(width, height),
                encoding=None,
                window=WINDOW,
                max_pktsize=MAX_PACKET,
            )
        except (asyncssh.Error, OSError) as exc:
            shell._request.cancel()
            raise TransportError(f"The agent did not open the shell's terminal: {exc}.") from None
        shell._chan = chan
        rec = session.recorder
        rec.event("shell_start", term=term[:64], width=width, height=height)
        rec.resize(width, height)
        return shell

    def _answered(self, request: asyncio.Task[Reply]) -> None:
        if not request.cancelled() and request.exception() is None:
            self.result = request.result().response
        elif not request.cancelled() and self._chan is not None:
            # The session ended (or the connection went) under a running shell: its end
            # is recorded all the same, and why, as the agent records it in its copy.
            self._record_cut_off()
        self._closed.set()
        if not self._ready.done():
            self._ready.cancel()

    # -- input, output, size ----------------------------------------------------

    def write(self, data: bytes) -> None:
        """Typed input: sent now, recorded once the agent says it was echoed."""
        if self._chan is None or self._closed.is_set() or not data:
            return
        self._chan.write(data)
        self._sent += data
        self._marks.extend([self._output_total] * len(data))

    def resize(self, width: int, height: int) -> None:
        if self._chan is None or self._closed.is_set() or width <= 0 or height <= 0:
            return
        self._chan.change_terminal_size(width, height)
        self.session.recorder.resize(width, height)

    def _output(self, data: bytes) -> None:
        if self._on_output is not None:  # the screen first: recording is not on the echo's path
            self._on_output(data)
        rec = self.session.recorder
        if not rec.closed:
            rec.output(data)
        self._output_total += len(data)
        self._output_log += data
        if len(self._output_log) > OUTPUT_LOG:
            cut = len(self._output_log) - OUTPUT_LOG
            del self._output_log[:cut]
            self._log_start += cut
        if self._checks:
            self._settle()

    def _event(self, stream: int, data: bytes) -> None:
        if stream != SHELL_EVENTS:
            return
        self._events += data
        while b"\n" in self._events:
            line, _, rest = bytes(self._events).partition(b"\n")
            self._events = bytearray(rest)
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        if event.get("ready") is True and not self._ready.done():
            self._ready.set_result(None)
            return
        count = event.get("input")
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            return
        judged = bytes(self._sent[:count])
        del self._sent[:count]
        mark = self._marks[0] if self._marks else self._output_total
        for _ in range(min(count, len(self._marks))):
            self._marks.popleft()
        deadline = asyncio.get_running_loop().time() + LOCAL_WINDOW
        kept = event.get("recorded") is True
        self._checks.append(_Check(judged, mark, deadline, None if kept else False))
        self._settle()

    def _settle(self, final: bool = False) -> None:
        """Record, in order, what has both verdicts; wake up for the next deadline."""
        now = asyncio.get_running_loop().time()
        while self._checks:
            check = self._checks[0]
            if check.seen is None:
                needed = characters(check.data)
                check.seen = _in_order(needed, self._output_log, check.mark - self._log_start)
                if not check.seen and not final and now < check.deadline:
                    check.seen = None
                    break
            self._checks.popleft()
            self._record_input(check.data, bool(check.seen))
        if self._checks and self._expiry is None and not final:
            self._expiry = asyncio.get_running_loop().call_at(
                self._checks[0].deadline, self._expired
            )

    def _expired(self) -> None:
        self._expiry = None
        self._settle()

    def _record_input(self, data: bytes, kept: bool) -> None:
        rec = self.session.recorder
        if rec.closed:
            return
        if kept:
            rec.input(data)
            self._last_recorded = True
            return
        self.withheld_bytes += len(data)
        if self._last_recorded:
            rec.event("input_withheld", reason="echo off")
        self._last_recorded = False

    # -- the end -----------------------------------------------------------------

    def unrecordable(self) -> None:
        """The transcript failed (a full disk): no shell goes on unrecorded; close() says why."""
        if self._chan is not None:
            self._chan.close()

    def _channel_closed(self) -> None:
        # The agent answers the request right after; wait() waits for that.
        pass

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait(self) -> None:
        """Until the shell is over (it exited, or the session ended)."""
        await self._closed.wait()

    async def close(self) -> Response | None:
        """Hang up (if still open); the agent's account of the shell, once it came."""
        if self._chan is not None:
            self._chan.close()
        if self._request is not None and not self._request.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._request), CLOSE_TIMEOUT)
        if self._request is not None and self._request.done() and not self._request.cancelled():
            error = self._request.exception()
            if error is not None:
                raise error
        if self._expiry is not None:
            self._expiry.cancel()
        self._settle(final=True)
        self._sent.clear()  # no verdict came: not recorded, as if the echo was off
        if self.result is not None:
            self._record_end(self.result)
        if self.session.recorder.failure is not None:
            raise self.session.recorder.failure
        return self.result

    def mark_detached(self) -> None:
        """The technician left the shell running (``~^Z``): an event in this copy only."""
        if not self.session.recorder.closed and not self.closed:
            self.session.recorder.event("shell_detach")

    def mark_attached(self) -> None:
        """The technician came back to the detached shell (``shell``)."""
        if not self.session.recorder.closed and not self.closed:
            self.session.recorder.event("shell_attach")

    def _record_cut_off(self) -> None:
        rec = self.session.recorder
        if rec.closed or self._recorded_end:
            return
        self._recorded_end = True
        rec.event(
            "operation",
            command="shell",
            op=Op.SHELL,
            ok=True,
            exit_status=None,
            reason=SESSION_ENDED,
        )

    def _record_end(self, response: Response) -> None:
        rec = self.session.recorder
        if rec.closed or self._recorded_end:
            return
        self._recorded_end = True
        fields: dict[str, Any] = {"command": "shell", "op": Op.SHELL, "ok": response.ok}
        if response.ok:
            fields.update(
                {k: v for k, v in response.result.items() if k not in ("type", "ok", "op")}
            )
        else:
            fields.update(error=response.error, message=response.message)
        kind = "refusal" if response.error == "refused" else "operation"
        rec.event(kind, **fields)


__all__ = ["ShellClient"]
