"""A hostile technician on a real agent: raw frames on the session channel, and checks
that the code stays secret and the customer's copy stays verifiable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from tests.session_support import Collector, Customer, connect_to, identity, start_agent
from toolkit.agent.server import Agent
from toolkit.agent.session import SessionEnd
from toolkit.consent import OneTimeCode, Scope, parse_code
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.protocol import (
    KIND_DATA,
    KIND_MESSAGE,
    SUBSYSTEM,
    Body,
    FrameDecoder,
    parse_data,
)
from toolkit.transcript.verify import Report, Verdict, examine, read_events
from toolkit.transport.ssh import ConsentAsk, connect

TIMEOUT = 10.0


def frame(body: bytes, kind: int = KIND_MESSAGE) -> bytes:
    return struct.pack(">IB", len(body) + 1, kind) + body


def request(request_id: Any, op: str, **fields: Any) -> bytes:
    """A request frame; ``request_id`` may be anything JSON can carry."""
    body = {"v": 1, "id": request_id, "op": op, **fields}
    return frame(json.dumps(body, separators=(",", ":")).encode())


def echo(request_id: int, word: str = "still-serving") -> bytes:
    return request(request_id, "run", argv=["echo", word])


@dataclass
class Answer:
    message: dict[str, Any]
    data: dict[int, bytes] = field(default_factory=dict)  # stream -> bytes, for this id

    @property
    def id(self) -> int:
        return int(self.message["id"])

    @property
    def error(self) -> str | None:
        error = self.message.get("error")
        return str(error["code"]) if isinstance(error, dict) else None


class FrameChannel:
    """The session subsystem spoken by hand: bytes out, decoded frames in."""

    chan: asyncssh.SSHClientChannel[bytes]

    def __init__(self) -> None:
        self._decoder = FrameDecoder()
        self._frames: list[tuple[int, Body]] = []
        self._data: dict[int, dict[int, bytearray]] = {}

    def send(self, data: bytes) -> None:
        self.chan.write(data)

    async def _more(self) -> bytes:
        """The next bytes the agent sent; empty once the channel closed."""
        raise NotImplementedError

    async def answer(self) -> Answer:
        """The next response message, with the data frames its id got before it."""
        while True:
            while self._frames:
                kind, body = self._frames.pop(0)
                if kind == KIND_DATA:
                    data = parse_data(body)
                    streams = self._data.setdefault(data.id, {})
                    streams.setdefault(data.stream, bytearray()).extend(data.data)
                    continue
                assert kind == KIND_MESSAGE, f"the agent sent a bad frame: {body!r}"
                message = json.loads(bytes(body))
                got = self._data.pop(message["id"], {})
                return Answer(message, {k: bytes(v) for k, v in got.items()})
            chunk = await asyncio.wait_for(self._more(), TIMEOUT)
            if not chunk:
                raise ConnectionError("the agent closed the channel")
            self._frames += self._decoder.feed(chunk)

    async def answers(self, count: int) -> list[Answer]:
        return [await self.answer() for _ in range(count)]

    async def still_serves(self, request_id: int = 4242) -> None:
        """A valid request after whatever came before gets its normal answer."""
        self.send(echo(request_id))
        answer = await self.answer()
        assert answer.id == request_id and answer.message["ok"] is True, answer.message
        assert answer.data == {1: b"still-serving\n"}

    async def sync(self) -> None:
        """Until the agent has taken in everything sent so far (or the channel is gone).

        A channel request is handled after the data sent before it was accepted
        (delivered, or held by a channel that paused reading); its reply says so.
        """
        with contextlib.suppress(asyncssh.Error, OSError, ConnectionError):
            await asyncio.wait_for(self.chan._make_request(b"keepalive@openssh.com"), TIMEOUT)


class RawChannel(FrameChannel):
    """A technician's channel that reads whatever comes."""

    def __init__(self, writer: asyncssh.SSHWriter[bytes], reader: asyncssh.SSHReader[bytes]):
        super().__init__()
        chan = writer.channel
        assert isinstance(chan, asyncssh.SSHClientChannel)
        self.chan = chan
        self.writer = writer
        self.reader = reader

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection) -> RawChannel:
        writer, reader, _ = await conn.open_session(subsystem=SUBSYSTEM, encoding=None)
        return cls(writer, reader)

    async def _more(self) -> bytes:
        return await self.reader.read(1 << 20)


class _Stopping(asyncssh.SSHClientSession[bytes]):
    """Stops reading at the first data the agent sends, until told to read again."""

    def __init__(self) -> None:
        self.chan: asyncssh.SSHClientChannel[bytes] | None = None
        self.stopped = asyncio.Event()
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.chan = chan

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self.chunks.put_nowait(data)
        if not self.stopped.is_set():
            self.stopped.set()
            assert self.chan is not None
            self.chan.pause_reading()  # asyncssh then sends no more window adjusts

    def connection_lost(self, exc: Exception | None) -> None:
        self.chunks.put_nowait(b"")


class StoppedReader(FrameChannel):
    """A technician who stops reading: at the first data it gets, its channel takes no
    more, so once its SSH window (``window`` bytes) is full the agent's answers have
    nowhere to go. :meth:`read_again` lets them through; :meth:`answer` reads them."""

    def __init__(self, chan: asyncssh.SSHClientChannel[bytes], session: _Stopping) -> None:
        super().__init__()
        self.chan = chan
        self._session = session

    @classmethod
    async def open(
        cls, conn: asyncssh.SSHClientConnection, window: int = 16 * 1024
    ) -> StoppedReader:
        chan, session = await conn.create_session(
            _Stopping, subsystem=SUBSYSTEM, encoding=None, window=window
        )
        assert isinstance(session, _Stopping)
        return cls(chan, session)

    @property
    def stopped(self) -> asyncio.Event:
        """Set once the first data came, and the reading stopped."""
        return self._session.stopped

    def read_again(self) -> None:
        self._session.stopped.set()
        self.chan.resume_reading()

    async def _more(self) -> bytes:
        return await self._session.chunks.get()


@dataclass
class Hostile:
    agent: Agent
    screen: Collector
    customer: Customer
    conn: asyncssh.SSHClientConnection
    channel: FrameChannel
    code: str  # the code this session consumed, as shown to the customer

    async def end(self) -> SessionEnd:
        """End the session the polite way and wait for the agent to seal its copy."""
        self.channel.send(request(9999, "end", reason="test done"))
        answer = await self.channel.answer()
        assert answer.id == 9999 and answer.message["ok"] is True
        return await asyncio.wait_for(self.agent.wait(), TIMEOUT)


@asynccontextmanager
async def running_agent(
    root: Path, **options: Any
) -> AsyncIterator[tuple[Agent, Collector, Customer]]:
    """:func:`start_agent`, stopped after; then no code it showed is written under ``root``."""
    agent, screen, customer = await start_agent(root, **options)
    try:
        yield agent, screen, customer
    finally:
        await agent.stop("test over")
    assert_never_written(screen.codes, screen.lines, root)


@asynccontextmanager
async def hostile_session(
    root: Path,
    *,
    customer: Customer | None = None,
    scopes: Iterable[Scope] = (Scope.DIAGNOSTICS,),
    stopping: bool = False,
) -> AsyncIterator[Hostile]:
    """A technician who passed consent, holding the raw session channel.

    ``stopping``: the channel is a :class:`StoppedReader`, which stops reading at the
    first data the agent sends.
    """
    offered = tuple(scopes)
    async with running_agent(root, customer=customer, offered=offered) as (agent, screen, who):
        code = agent.codes.current.display.reveal()
        conn, _ = await connect_to(agent, scopes=offered)
        try:
            channel = await (StoppedReader.open if stopping else RawChannel.open)(conn)
            yield Hostile(agent, screen, who, conn, channel, code)
        finally:
            conn.close()


async def connect_with_code(
    host: str, port: int, code: str, scopes: Iterable[Scope] = (Scope.DIAGNOSTICS,)
) -> asyncssh.SSHClientConnection:
    """Pass consent with toolkit's own handshake on any agent (a `toolkit share` process)."""
    ask = ConsentAsk(identity(), "T-1", frozenset(scopes), parse_code(code))
    conn, _ = await connect(host, port, ask)
    return conn


def customer_report(end: SessionEnd) -> Report:
    """The customer's copy, examined with the allowed_signers file written next to it."""
    assert end.transcript is not None
    trust = end.transcript.with_name(end.transcript.name + ".allowed_signers")
    return examine(end.transcript, AllowedSigners.from_file(trust))


def assert_sealed(end: SessionEnd) -> list[dict[str, Any]]:
    """The customer's copy verifies SEALED; returns its events' fields."""
    report = customer_report(end)
    assert report.verdict is Verdict.SEALED, report.failure
    assert end.transcript is not None
    return [e.fields() for e in read_events(end.transcript) if e.code == "e"]


def code_spellings(codes: Iterable[OneTimeCode | str]) -> list[str]:
    """Every way a code could be written down: 417-093-552, 417093552, 417 093 552."""
    spelled = []
    for code in codes:
        shown = code if isinstance(code, str) else code.display.reveal()
        digits = shown.replace("-", "")
        spelled += [shown, digits, f"{digits[:3]} {digits[3:6]} {digits[6:]}"]
    return spelled


def assert_never_written(codes: Iterable[OneTimeCode | str], *places: Path | list[str]) -> None:
    """No code appears in these files (and everything below these directories) or lines."""
    texts: list[str] = []
    for place in places:
        if isinstance(place, list):
            texts += place
            continue
        files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
        texts += [p.read_bytes().decode("utf-8", "replace") for p in files]
    for spelling in code_spellings(codes):
        assert not any(spelling in text for text in texts), "a one-time code was written down"
