"""The technician's end of the session protocol: requests with ids, replies matched back.

Several requests may be in flight; data frames are routed by request id to a
callback (streamed) or collected into the :class:`Reply`. A response with id
0 and error ``ended`` is the agent ending the session (the customer pressed
Ctrl-C): every waiting request then raises :class:`SessionEnded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from toolkit.errors import ConsentRefused, ToolkitError, TransportError
from toolkit.protocol import (
    CONTENT,
    KIND_DATA,
    KIND_MESSAGE,
    MAX_NOTICES,
    NOTICES,
    STDERR,
    STDOUT,
    SUBSYSTEM,
    Body,
    FrameDecoder,
    Op,
    ProtocolError,
    Request,
    Response,
    parse_data,
    parse_response,
)
from toolkit.transport.tuning import MAX_PACKET, WINDOW

#: Receives (stream, bytes) as data arrives, instead of collecting it.
OnData = Callable[[int, bytes], None]
#: Receives (request id, notice) for each notice the agent sends (docs/protocol.md).
OnNotice = Callable[[int, dict[str, Any]], None]
READ_SIZE = 1 << 20
#: How long a request whose write failed waits for the reader to learn why the agent
#: closed the session (its ``ended`` message comes before the channel's close).
READER_GRACE = 1.0


class SessionEnded(ConsentRefused):
    """The agent ended the session (the customer stopped it)."""


class ConnectionLost(TransportError):
    """The connection to the agent went away during the session."""


@dataclass
class Reply:
    response: Response
    data: dict[int, bytearray] = field(default_factory=dict)

    def stream(self, stream: int) -> bytes:
        return bytes(self.data.get(stream, b""))

    @property
    def stdout(self) -> bytes:
        return self.stream(STDOUT)

    @property
    def stderr(self) -> bytes:
        return self.stream(STDERR)

    @property
    def content(self) -> bytes:
        return self.stream(CONTENT)


@dataclass
class _Pending:
    future: asyncio.Future[Response]
    on_data: OnData | None
    op: str = ""
    data: dict[int, bytearray] = field(default_factory=dict)
    notices: int = 0  # told so far (docs/protocol.md: at most MAX_NOTICES)


logger = logging.getLogger(__name__)


def _ended_message(why: str) -> str:
    """The agent's reason as one sentence, without saying "the customer ended" twice."""
    if why.lower().startswith("the customer"):
        return why[0].upper() + why[1:].rstrip(".") + "."
    return f"The customer ended the session: {why}." if why else "The customer ended the session."


class SessionClient:
    """One session subsystem channel. Build it with :meth:`open`."""

    def __init__(self, writer: asyncssh.SSHWriter[bytes], reader: asyncssh.SSHReader[bytes]):
        self._writer = writer
        self._reader = reader
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._ended: Exception | None = None
        self._failure: Exception | None = None  # our side cannot go on (see fail())
        self._ended_event = asyncio.Event()
        #: Who hears the agent's notices (the prompt's waiting line); None: nobody.
        self.on_notice: OnNotice | None = None
        self._reading = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection) -> SessionClient:
        try:
            writer, reader, _ = await conn.open_session(
                subsystem=SUBSYSTEM, encoding=None, window=WINDOW, max_pktsize=MAX_PACKET
            )
        except asyncssh.ChannelOpenError as exc:
            raise TransportError(f"The agent did not open a session: {exc.reason}.") from None
        return cls(writer, reader)

    @property
    def ended(self) -> Exception | None:
        """Why the session is over (SessionEnded, ConnectionLost, or what fail() gave)."""
        return self._ended if self._ended is not None else self._failure

    async def request(self, op: str, *, on_data: OnData | None = None, **args: Any) -> Reply:
        """Send one request and wait for its response (SessionEnded/ConnectionLost if gone)."""
        if self._ended is not None:
            raise self._ended
        if self._failure is not None and op != Op.END:
            raise self._failure
        request_id = next(self._ids)
        pending = _Pending(asyncio.get_running_loop().create_future(), on_data, op)
        self._pending[request_id] = pending
        try:
            self._writer.write(Request(request_id, op, args).to_frame())
            await self._writer.drain()
            response = await pending.future
        except (OSError, asyncssh.Error) as exc:
            # The agent may have said why just before it closed the channel (the customer
            # ended it, its disk filled): the reader has that, or will in a moment.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended_event.wait(), READER_GRACE)
            self._end(ConnectionLost(f"The connection to the agent was lost: {exc}."))
            assert self._ended is not None
            raise self._ended from None
        finally:
            self._pending.pop(request_id, None)
        return Reply(response, pending.data)

    def in_flight(self, *ops: str) -> list[int]:
        """The ids of the requests waiting for their response (of these ``ops``, if given)."""
        return [rid for rid, p in self._pending.items() if not ops or p.op in ops]

    async def cancel(self, target: int) -> bool:
        """Ask the agent to stop request ``target``; True if it was still running there.

        The target then answers with the error ``cancelled``.
        """
        reply = await self.request(Op.CANCEL, target=target)
        return bool(reply.response.ok and reply.response.result.get("cancelled"))

    async def _read(self) -> None:
        decoder = FrameDecoder()
        why: Exception = ConnectionLost("The agent closed the connection.")
        try:
            while chunk := await self._reader.read(READ_SIZE):
                for kind, body in decoder.feed(chunk):
                    if kind == KIND_DATA:
                        self._data(body)
                    elif kind == KIND_MESSAGE:
                        self._message(body)
                    else:
                        raise ProtocolError(f"the agent sent a bad frame: {bytes(body).decode()}")
                if self._ended is not None:
                    return
        except ProtocolError as exc:
            why = ConnectionLost(f"The agent broke the protocol: {exc.message}")
        except (OSError, asyncssh.Error) as exc:
            why = ConnectionLost(f"The connection to the agent was lost: {exc}.")
        except ToolkitError as exc:
            why = exc
        except Exception as exc:  # a bug: the session must still end, not hang
            logger.exception("the session reader failed")
            why = ConnectionLost(f"The session stopped on an error: {exc!r}.")
        self._end(why)

    def _data(self, body: Body) -> None:
        data = parse_data(body)
        pending = self._pending.get(data.id)
        if pending is None:
            return  # data for a request that gave up waiting
        if data.stream == NOTICES:
            # Neither output nor content: never recorded or collected, only told.
            # A hostile agent's flood of notices would be a redraw each: past the documented
            # two per request, they are dropped unread.
            for line in data.data.splitlines():
                if pending.notices >= MAX_NOTICES:
                    break
                pending.notices += 1
                with contextlib.suppress(ValueError, RecursionError):
                    notice = json.loads(line)
                    if isinstance(notice, dict) and self.on_notice is not None:
                        self.on_notice(data.id, notice)
            return
        if pending.on_data is not None:
            pending.on_data(data.stream, data.data)
        else:
            pending.data.setdefault(data.stream, bytearray()).extend(data.data)

    def _message(self, body: Body) -> None:
        response = parse_response(body)
        if response.id == 0:
            if response.error == "ended":
                self._end(SessionEnded(_ended_message(response.message or "")))
                return
            raise ProtocolError(f"the agent reported: {response.message}")
        pending = self._pending.get(response.id)
        if pending is not None and not pending.future.done():
            pending.future.set_result(response)

    async def wait_ended(self) -> Exception:
        """Until the session is over; why (SessionEnded, ConnectionLost, or fail()'s)."""
        await self._ended_event.wait()
        assert self.ended is not None
        return self.ended

    def fail(self, why: Exception) -> None:
        """Our side cannot go on (its transcript failed): every request in flight, and
        every new one but ``end``, fails with ``why``, and wait_ended() returns it."""
        if self._failure is None:
            self._failure = why
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(why)
                pending.future.exception()  # retrieved by its request; no asyncio warning
        self._ended_event.set()

    def _end(self, why: Exception) -> None:
        if self._ended is None:
            self._ended = why
            self._ended_event.set()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(self._ended)
                # Retrieved by the waiting request; this keeps asyncio from warning otherwise.
                pending.future.exception()

    async def close(self) -> None:
        self._end(ConnectionLost("The session was closed."))
        with contextlib.suppress(Exception):
            self._writer.close()
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reading


__all__ = ["ConnectionLost", "OnData", "OnNotice", "Reply", "SessionClient", "SessionEnded"]
