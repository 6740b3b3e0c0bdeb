"""SessionClient: why a session ended, when the agent says it and closes at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from toolkit.protocol import Response
from toolkit.session.client import ConnectionLost, SessionClient, SessionEnded


class _Closed:
    """A channel writer the agent has already closed: every write fails."""

    def write(self, data: bytes) -> None:
        raise BrokenPipeError("Channel not open for sending")

    async def drain(self) -> None:  # pragma: no cover - write fails first
        return None


class _Reader:
    """What the agent sent before closing, delivered only when the test says so."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()

    async def read(self, size: int) -> bytes:
        return await self.frames.get()


def test_a_write_that_fails_as_the_agent_ends_the_session_reports_the_agents_reason() -> None:
    # The customer ended the session: the agent sent "ended", then closed the channel. A
    # request written in between fails; the technician must hear the customer's reason,
    # not "the connection was lost" (which exits 4, a network failure).
    async def main() -> Exception:
        reader = _Reader()
        client = SessionClient(_Closed(), reader)  # type: ignore[arg-type]
        asking = asyncio.ensure_future(client.request("run", argv=["true"]))
        await asyncio.sleep(0.01)  # the write has failed; the reader has not read yet
        ended = Response(0, False, error="ended", message="the customer ended the session")
        reader.frames.put_nowait(ended.to_frame())
        reader.frames.put_nowait(b"")
        with pytest.raises((SessionEnded, ConnectionLost)) as caught:
            await asyncio.wait_for(asking, 5)
        return caught.value

    assert isinstance(asyncio.run(main()), SessionEnded)


def test_a_write_that_fails_with_no_reason_from_the_agent_is_a_lost_connection() -> None:
    async def main() -> Any:
        reader = _Reader()
        client = SessionClient(_Closed(), reader)  # type: ignore[arg-type]
        asking = asyncio.ensure_future(client.request("run", argv=["true"]))
        reader.frames.put_nowait(b"")  # closed, without a word
        with pytest.raises((SessionEnded, ConnectionLost)) as caught:
            await asyncio.wait_for(asking, 5)
        return caught.value

    assert isinstance(asyncio.run(main()), ConnectionLost)


class _Open:
    """A channel writer that takes every request."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    async def drain(self) -> None:
        return None


def test_past_two_notices_a_request_hears_no_more() -> None:
    # A hostile agent floods notices (each one a redraw of the waiting line); the
    # protocol allows two per request, the client tells no more than that.
    from toolkit.protocol import MAX_NOTICES, data_frames, notice_frame, request_id_of

    async def main() -> list[tuple[int, dict[str, Any]]]:
        reader, writer = _Reader(), _Open()
        client = SessionClient(writer, reader)  # type: ignore[arg-type]
        told: list[tuple[int, dict[str, Any]]] = []
        client.on_notice = lambda rid, notice: told.append((rid, notice))
        asking = asyncio.ensure_future(client.request("fix", name="flush-dns"))
        while not writer.written:
            await asyncio.sleep(0)
        rid = request_id_of(writer.written[0][5:])
        flood = b"".join(b'{"asking":"fix %d"}\n' % i for i in range(500))
        reader.frames.put_nowait(b"".join(data_frames(rid, 5, flood)))
        reader.frames.put_nowait(notice_frame(rid, {"answered": True}))
        reader.frames.put_nowait(Response(rid, True, {}).to_frame())
        await asyncio.wait_for(asking, 5)
        assert len(told) == MAX_NOTICES
        return told

    told = asyncio.run(main())
    assert [notice for _, notice in told] == [{"asking": "fix 0"}, {"asking": "fix 1"}]
