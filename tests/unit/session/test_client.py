"""SessionClient: why a session ended, when the agent says it and closes at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from toolkit.session.client import ConnectionLost, SessionClient, SessionEnded
from toolkit.session.protocol import Response


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
