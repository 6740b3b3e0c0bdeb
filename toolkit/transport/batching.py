"""SSH connections whose writes go out batched, and without needless ignores.

asyncssh writes every SSH packet as a write of its own, and before each one
an empty MSG_IGNORE: RFC 4251 section 9.3.1's countermeasure to the
chosen-plaintext attack on CBC mode's predictable IVs. RFC 4253 section 11.2
requires no one to send them and OpenSSH does not; toolkit's connections
negotiate only AES-GCM, ChaCha20-Poly1305 and AES-CTR
(:data:`toolkit.transport.tuning.CIPHERS`), which need none. They were half the
packets either end handled: a keystroke took four packets and four ignores to
its echo.

:func:`attach` gives an SSH connection its transport (a socket's, or a relay's
SSH channel) through :class:`Batched`, which sends what was written in one
turn of the event loop as one write (at most about one packet's worth at a
time), and stops the connection's empty ignores unless its cipher is CBC. On
a relay channel every write is a packet of the outer connection, which costs
Python at the agent, the relay and the technician alike. A server's
connection (the agent's, a relay's) also stops reading while its peer reads
nothing of what it is sent.

:class:`DirectTCP` is asyncssh's tunnel protocol over plain TCP through
:func:`attach`: give it as ``tunnel=`` to ``asyncssh.connect`` or
``asyncssh.listen``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from toolkit.transport.tuning import MAX_PACKET, tune_allocator

_MSG_IGNORE = 2  # RFC 4253 section 11.2
_MSG_NEWKEYS = 21
_EMPTY = (b"\0\0\0\0",)  # an SSH string of no bytes: the whole ignore asyncssh sends


def attach(conn: Any, transport: Any) -> None:
    """Give an asyncssh connection its transport: batched, and no empty ignores unless CBC.

    The first connection also tunes the process's allocator for packets
    (:func:`toolkit.transport.tuning.tune_allocator`).
    """
    tune_allocator()
    send = conn.send_packet
    cbc: bool | None = None  # of the cipher we send with; asked again after each NEWKEYS

    def send_packet(pkttype: int, *args: bytes, handler: Any = None) -> None:
        nonlocal cbc
        # Drop only the empty ignore asyncssh puts before each packet; CBC keeps it.
        if pkttype == _MSG_IGNORE and args == _EMPTY:
            if cbc is None:
                cbc = "cbc" in conn.get_extra_info("send_cipher", "")  # aes*-cbc, seed-cbc@ssh.com
            if not cbc:
                return
        elif pkttype == _MSG_NEWKEYS:
            cbc = None  # the packets after it go out under the newly agreed cipher
        send(pkttype, *args, handler=handler)

    conn.send_packet = send_packet
    if getattr(conn, "is_server", bool)():  # an asyncssh server connection
        _read_only_while_read(conn, transport)
    conn.connection_made(Batched(transport))


def _read_only_while_read(conn: Any, transport: Any) -> None:
    """A server reads no more from a peer that does not read what it is sent.

    asyncssh answers some messages itself (unknown packet types, global and
    channel requests it does not know), before authentication too, and ignores
    its transport's pause_writing: a peer that sends them and reads nothing
    would grow the server's write buffer without bound. While that buffer is
    over its high-water mark the transport stops reading, so whatever the peer
    sends waits in its own socket; keepalives then end a peer that never reads.
    """
    pause, resume = conn.pause_writing, conn.resume_writing

    def paused() -> None:
        pause()
        transport.pause_reading()

    def resumed() -> None:
        resume()
        transport.resume_reading()

    conn.pause_writing, conn.resume_writing = paused, resumed


class Batched:
    """A transport (a socket's, or an SSH channel) whose writes are joined per loop turn."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= MAX_PACKET:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._size = [], 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending, self._size = [], 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # get_extra_info, is_closing, ...
        return getattr(self._transport, name)


class _Protocol(asyncio.Protocol):
    """Hands a TCP connection to an SSH connection through :class:`Batched`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        attach(self.inner, transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class DirectTCP:
    """asyncssh's tunnel protocol, over plain TCP, with batched writes.

    ``sock`` is a listening socket the server side already bound.
    """

    def __init__(self, sock: socket.socket | None = None) -> None:
        self._sock = sock

    async def create_connection(
        self, session_factory: Callable[[], Any], host: str, port: int
    ) -> tuple[asyncio.BaseTransport, Any]:
        inner = session_factory()
        transport, _ = await asyncio.get_running_loop().create_connection(
            lambda: _Protocol(inner), host, port
        )
        return transport, inner

    async def create_server(
        self, session_factory: Callable[[str, int], Any], host: str, port: int
    ) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()

        def protocol() -> _Protocol:
            return _Protocol(session_factory("", 0))

        if self._sock is not None:
            return await loop.create_server(protocol, sock=self._sock)
        return await loop.create_server(protocol, host, port)


__all__ = ["Batched", "DirectTCP", "attach"]
