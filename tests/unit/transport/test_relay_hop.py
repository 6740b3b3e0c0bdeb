"""A relay channel hands its bytes to the inner SSH connection (toolkit.transport.relay._Hop)."""

from __future__ import annotations

import asyncio
from typing import Any

from toolkit.transport.relay import _Hop


class Inner:
    """What _Hop and batching.attach use of an asyncssh connection, recording the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def send_packet(self, pkttype: int, *args: bytes, handler: Any = None) -> None:
        self.calls.append(("send", pkttype))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def connection_made(self, transport: Any) -> None:
        self.calls.append(("made", None))

    def data_received(self, data: bytes) -> None:
        self.calls.append(("data", data))

    def eof_received(self) -> bool:
        self.calls.append(("eof", None))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append(("lost", str(exc)))


class Chan:
    def set_extra_info(self, **info: Any) -> None:
        pass


def _hop() -> tuple[_Hop, Inner]:
    inner = Inner()
    hop = _Hop(lambda: inner, "relay.example")
    hop.connection_made(Chan())
    return hop, inner


def test_packets_of_one_read_reach_the_inner_connection_joined() -> None:
    async def main() -> list[tuple[str, Any]]:
        hop, inner = _hop()
        for piece in (b"one ", b"read ", b"of the relay"):
            hop.data_received(piece, None)
        seen_before = list(inner.calls)
        await asyncio.sleep(0)
        hop.data_received(b"next", None)
        await asyncio.sleep(0)
        return [*seen_before, ("turn", None), *inner.calls[len(seen_before) :]]

    calls = asyncio.run(main())
    assert calls == [
        ("made", None),
        ("turn", None),
        ("data", b"one read of the relay"),
        ("data", b"next"),
    ]


def test_end_of_file_and_loss_come_after_the_bytes_before_them() -> None:
    async def main() -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        hop, inner = _hop()
        hop.data_received(b"last words", None)
        hop.eof_received()
        lost_hop, lost_inner = _hop()
        lost_hop.data_received(b"cut", None)
        lost_hop.connection_lost(ConnectionResetError())
        await asyncio.sleep(0)  # the scheduled hand-over finds nothing left
        return inner.calls, lost_inner.calls

    ended, lost = asyncio.run(main())
    assert ended == [("made", None), ("data", b"last words"), ("eof", None)]
    assert lost[:2] == [("made", None), ("data", b"cut")]
    assert lost[2][0] == "lost" and "relay.example" in lost[2][1] and "lost" in lost[2][1]
    assert len(lost) == 3


def test_the_inner_connection_sends_no_empty_ignores() -> None:
    hop, inner = _hop()
    assert hop.inner is inner
    inner.send_packet(2, b"\0\0\0\0")  # through attach's filter
    inner.send_packet(94, b"data")
    assert [c for c in inner.calls if c[0] == "send"] == [("send", 94)]
