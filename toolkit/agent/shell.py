"""The granted shell, agent side: a PTY channel beside the protocol channel.

A shell is one ``shell`` request on the protocol channel plus one more SSH
``session`` channel that asks for ``pty-req`` then ``shell`` (docs/protocol.md,
"The shell"). The request checks the scope and arms :class:`AgentShell`; the
next session channel the technician opens is its :class:`ShellChannel`, and
only that one, only while the request waits for it, may have a PTY. The
request's response comes when the shell ends.

Recording, in the customer's copy: the output (``o``), the input (``i``)
while the PTY echoes it, and window sizes (``r``). Input that arrives while
the PTY's ECHO flag is off is not recorded; the agent tells the technician,
for every byte of input, whether it was recorded, so that both copies
withhold exactly the same bytes (``SHELL_EVENTS`` data frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncssh

from toolkit.agent.pty import PtyShell
from toolkit.protocol import SESSION_ENDED, SHELL_EVENTS, Op, data_frames
from toolkit.protocol.echo import EchoJudge

if TYPE_CHECKING:
    from toolkit.agent.session import AgentSession

logger = logging.getLogger(__name__)

#: How long an armed shell waits for its PTY channel.
OPEN_TIMEOUT = 15.0
#: Verdicts on input are sent in batches this often (they only feed the technician's
#: transcript, never the screen, so they need not be fast).
VERDICT_DELAY = 0.02
#: Window changes are applied (and recorded) at most once per this many seconds.
RESIZE_INTERVAL = 0.05
#: Input the shell has not read yet, beyond which the agent reads no more from the
#: technician (it waits in their SSH window) until the shell has taken it all.
PTY_INPUT_HIGH = 64 * 1024


class ShellError(Exception):
    """The shell could not be started or its channel never came."""


class AgentShell:
    """One shell: its request id, its channel, its PTY, what it recorded."""

    def __init__(self, session: AgentSession, request_id: int) -> None:
        self.session = session
        self.request_id = request_id
        self.channel: ShellChannel | None = None
        self.pty: PtyShell | None = None
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._started = time.monotonic()
        self._cut_off = False  # its end recorded by session_ended()
        self.input_bytes = 0
        self.recorded_bytes = 0
        self.withheld_spans = 0
        self.output_bytes = 0
        self.resizes = 0
        self._output_hash = hashlib.sha256()
        self._verdict: bool | None = None  # the state of the bytes counted in _pending_count
        self._pending_count = 0
        self._last_recorded = True  # for counting spans of withheld input
        self._judge = EchoJudge()
        self._expiry: asyncio.TimerHandle | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._size: tuple[int, int] | None = None  # the last window size asked for
        self._applied: tuple[int, int] | None = None  # the last one applied and recorded
        self._resize_handle: asyncio.TimerHandle | None = None
        #: Why input is held, if it is: the protocol channel has no room for verdicts
        #: ("answers"), or the shell has not read what it was given ("pty").
        self._holds: set[str] = {"answers"} if session.answers_waiting else set()

    @property
    def input_held(self) -> bool:
        """Whether input is held, for any reason."""
        return bool(self._holds)

    @property
    def awaiting_channel(self) -> bool:
        return self.channel is None and not self._opened.done()

    def claim(self, channel: ShellChannel) -> bool:
        if not self.awaiting_channel:
            return False
        self.channel = channel
        return True

    # -- the life of the shell ----------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Wait for the channel, then for the shell's end; the result for the response."""
        self._send_event({"ready": True})
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), OPEN_TIMEOUT)
        except TimeoutError:
            raise ShellError("the shell's terminal channel did not open in time") from None
        status = await self._ended
        return self.result(status)

    def result(self, status: int | None) -> dict[str, Any]:
        return {
            "exit_status": status,
            "shell": self.pty.shell if self.pty else None,
            "output_bytes": self.output_bytes,
            "output_sha256": self._output_hash.hexdigest(),
            "input_bytes": self.input_bytes,
            "recorded_input_bytes": self.recorded_bytes,
            "withheld_spans": self.withheld_spans,
            "resizes": self.resizes,
            "seconds": round(time.monotonic() - self._started, 3),
        }

    async def start(self, term: str, width: int, height: int) -> None:
        """Spawn the shell on a PTY (the channel asked for pty-req and shell)."""
        session = self.session
        try:
            self.pty = await PtyShell.start(
                term=term,
                width=width,
                height=height,
                home=session.agent.settings.policy.home,
                session=session.id,
            )
        except OSError as exc:
            if not self._opened.done():
                self._opened.set_exception(ShellError(f"the shell could not start: {exc}"))
            raise
        rec = session.recorder
        if not rec.closed:
            rec.event(
                "shell_start",
                id=self.request_id,
                shell=self.pty.shell,
                term=term[:64],
                width=width,
                height=height,
            )
            rec.resize(max(width, 1), max(height, 1))
        self._size = self._applied = (width, height)
        session.agent.observer.say(f"shell started ({self.pty.shell}, {width}x{height})")
        session.agent.observer.shell_size(width, height)
        self.pty.on_input_drained = lambda: self._hold("pty", False)
        self.pty.read_into(self._output, self._pty_closed)
        if not self._opened.done():
            self._opened.set_result(None)

    def _output(self, data: bytes) -> None:
        self.output_bytes += len(data)
        self._output_hash.update(data)
        if self.channel is not None:
            self.channel.write(data)
        rec = self.session.recorder
        if not rec.closed:
            rec.output(data)
        self._judge.shown(data)
        self._settle()
        self.session.agent.observer.shell_output(data)

    def _pty_closed(self) -> None:
        asyncio.get_running_loop().create_task(self._finish())

    async def _finish(self) -> None:
        status = await self.pty.close() if self.pty is not None else None
        if self.channel is not None:
            self.channel.exit(status)
        if not self._ended.done():
            self._ended.set_result(status if status is not None else -1)

    def input(self, data: bytes) -> None:
        """The technician typed ``data``: judged in the mode the PTY is in as it arrives."""
        if self.pty is None or not data or self.session.recorder.closed:
            return  # (closed: the transcript failed; nothing reaches the shell unrecorded)
        loop = asyncio.get_running_loop()
        self._judge.typed(data, self.pty.input_mode(), loop.time())  # before the write
        self.pty.write(data)
        self.input_bytes += len(data)
        if self.pty.input_waiting > PTY_INPUT_HIGH:  # a shell that does not read its input
            self._hold("pty", True)
        self._settle()

    def _settle(self) -> None:
        """Record what has a verdict, in order; tell the technician; wake up for the rest."""
        loop = asyncio.get_running_loop()
        self._judge.expire(loop.time())
        self._apply(self._judge.take())
        deadline = self._judge.next_deadline()
        if deadline is not None and self._expiry is None:
            self._expiry = loop.call_at(deadline, self._expired)

    def _apply(self, verdicts: list[tuple[bytes, bool]]) -> None:
        """Record the input kept, mark where withheld input begins, tell the technician."""
        rec = self.session.recorder
        for data, recorded in verdicts:
            if recorded:
                self.recorded_bytes += len(data)
                if not rec.closed:
                    rec.input(data)
            elif self._last_recorded:
                self.withheld_spans += 1
                if not rec.closed:
                    rec.event("input_withheld", id=self.request_id, reason="echo off")
            self._last_recorded = recorded
            self._verdict_for(len(data), recorded)

    def _expired(self) -> None:
        self._expiry = None
        self._settle()

    def resize(self, width: int, height: int) -> None:
        """A window change: applied and recorded at once, then at most once per
        RESIZE_INTERVAL (the latest size wins), so a flood of them costs nothing more."""
        if self.pty is None or width <= 0 or height <= 0:
            return
        self._size = (width, height)
        if self._resize_handle is None:
            self._apply_size()

    def _apply_size(self) -> None:
        self._resize_handle = None
        if self.pty is None or self._size is None or self._size == self._applied:
            return
        self._applied = (width, height) = self._size
        self.pty.resize(width, height)
        self.session.agent.observer.shell_size(width, height)
        self.resizes += 1
        rec = self.session.recorder
        if not rec.closed:
            rec.resize(width, height)
        self._resize_handle = asyncio.get_running_loop().call_later(
            RESIZE_INTERVAL, self._apply_size
        )

    def hold_input(self, held: bool) -> None:
        """Take no input while ``held`` (its verdicts would have nowhere to go)."""
        self._hold("answers", held)

    def _hold(self, reason: str, held: bool) -> None:
        before = self.input_held
        if held:
            self._holds.add(reason)
        else:
            self._holds.discard(reason)
        if self.channel is not None and self.input_held != before:
            self.channel.hold_input(self.input_held)

    def hang_up(self) -> None:
        """The technician closed the channel (the escape, or the session's end)."""
        if self.pty is not None:
            asyncio.get_running_loop().create_task(self._finish())
        elif not self._opened.done():
            self._opened.set_exception(ShellError("the shell's channel closed before it started"))
            self._ended.cancel()

    def session_ended(self) -> None:
        """The session ends under a running shell: record its end now, before the seal.

        The request that would have recorded it is cancelled with the session, so
        without this a shell cut off by the end is neither counted nor ended in the
        customer's copy (docs/transcript-format.md, "Operations").
        """
        rec = self.session.recorder
        exited = self._ended.done() and not self._ended.cancelled()  # (the end cancels it)
        if self.pty is None or exited or self._cut_off or rec.closed:
            return
        self._cut_off = True
        self._apply(self._judge.give_up())
        fields = {"id": self.request_id, "op": Op.SHELL, **self.result(None)}
        rec.event("operation", **fields, ok=True, reason=SESSION_ENDED)

    async def close(self) -> None:
        """Whatever happened: no shell, no channel, no verdict left unsent."""
        for handle in (self._expiry, self._resize_handle):
            if handle is not None:
                handle.cancel()
        self._apply(self._judge.give_up())
        self.flush_verdicts()
        if self.pty is not None:
            await self.pty.close()
        if self.channel is not None:
            self.channel.close()
        if not self._opened.done():
            self._opened.cancel()
        if not self._ended.done():
            self._ended.cancel()

    # -- verdicts for the technician's transcript ----------------------------------

    def _verdict_for(self, count: int, recorded: bool) -> None:
        if self._verdict is not None and self._verdict != recorded:
            self.flush_verdicts()
        self._verdict = recorded
        self._pending_count += count
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(
                VERDICT_DELAY, self.flush_verdicts
            )

    def flush_verdicts(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._pending_count:
            self._send_event({"input": self._pending_count, "recorded": bool(self._verdict)})
        self._pending_count = 0
        self._verdict = None

    def _send_event(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        for frame in data_frames(self.request_id, SHELL_EVENTS, line):
            self.session.write_now(frame)


class ShellChannel(asyncssh.SSHServerSession[bytes]):
    """The PTY channel of an armed shell: pty-req then shell, nothing else."""

    def __init__(self, shell: AgentShell) -> None:
        self._shell = shell
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._term: tuple[str, int, int] | None = None
        self._running = False  # asyncssh reads the channel only once the shell started
        self._closed = False

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(self, term_type: str, term_size: Any, term_modes: Any) -> bool:
        width, height = int(term_size[0]), int(term_size[1])
        self._term = (term_type, width or 80, height or 24)
        return True

    def shell_requested(self) -> bool:
        if self._term is None:
            self._shell.session.refuse_channel("a shell without a PTY")
            return False
        return True

    def exec_requested(self, command: str) -> bool:
        self._shell.session.refuse_channel("a command channel (exec)")
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        self._shell.session.refuse_channel(f"the subsystem {subsystem[:64]!r} on a shell channel")
        return False

    def session_started(self) -> None:
        assert self._term is not None
        self._running = True
        term, width, height = self._term
        task = asyncio.get_running_loop().create_task(self._shell.start(term, width, height))
        task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is not None:
            self.close()

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if datatype is None:
            self._shell.input(data)
        if self._shell.input_held:  # held before the shell started: asyncssh read on
            self.hold_input(True)

    def hold_input(self, held: bool) -> None:
        """Stop reading input (it then waits in the technician's SSH window), or read on."""
        if self._chan is None or self._closed or not self._running:
            return
        if held:
            self._chan.pause_reading()
        else:
            self._chan.resume_reading()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self._shell.resize(width, height)

    def break_received(self, msec: int) -> bool:
        return False

    def signal_received(self, signal: str) -> None:
        return None

    def eof_received(self) -> bool:
        self._shell.hang_up()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._shell.hang_up()

    def pause_writing(self) -> None:
        if self._shell.pty is not None:
            self._shell.pty.pause()

    def resume_writing(self) -> None:
        if self._shell.pty is not None:
            self._shell.pty.resume()

    def write(self, data: bytes) -> None:
        if self._chan is not None and not self._closed:
            self._chan.write(data)

    def exit(self, status: int | None) -> None:
        if self._chan is not None and not self._closed:
            with contextlib.suppress(OSError, asyncssh.Error):
                self._chan.exit(status if status is not None and 0 <= status < 256 else 255)
            self._closed = True

    def close(self) -> None:
        if self._chan is not None and not self._closed:
            self._closed = True
            self._chan.close()


__all__ = ["AgentShell", "ShellChannel", "ShellError"]
