"""Threat: a technician who reaches for a shell the customer did not grant.

A PTY or a shell is only ever opened on the one channel a ``shell`` request
armed, on a consent that granted the shell scope; every other way to ask for
one (a PTY on the protocol channel, a second channel with pty-req and shell,
exec on the armed channel) is refused, recorded, and the session goes on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path

import asyncssh
import pytest

from tests.threats.agent_support import Hostile, assert_sealed, hostile_session, request
from toolkit.consent import Scope
from toolkit.protocol import SHELL_EVENTS


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


async def open_pty(h: Hostile, command: str | None = None) -> None:
    await h.conn.create_session(
        asyncssh.SSHClientSession, command, term_type="xterm", encoding=None
    )


def refusals(events: list[dict[str, object]]) -> list[str]:
    return [str(e.get("message")) for e in events if e["type"] == "refusal"]


@pytest.mark.parametrize(
    "scopes", [(Scope.DIAGNOSTICS,), (Scope.DIAGNOSTICS, Scope.SHELL)], ids=["no-shell", "shell"]
)
def test_a_pty_channel_without_a_shell_request_is_refused(
    tmp_path: Path, scopes: tuple[Scope, ...]
) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path, scopes=scopes) as h:
            with pytest.raises(asyncssh.ChannelOpenError):
                await open_pty(h)
            await h.channel.still_serves()
            events = assert_sealed(await h.end())
        assert "refused: a second session channel is not offered" in refusals(events)

    run(main())


def test_a_shell_request_without_the_scope_is_refused_and_arms_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            h.channel.send(request(7, "shell"))
            answer = await h.channel.answer()
            assert (answer.id, answer.error) == (7, "refused")
            assert answer.data == {}  # no "ready"
            with pytest.raises(asyncssh.ChannelOpenError):
                await open_pty(h)
            events = assert_sealed(await h.end())
        assert any("shell scope" in m for m in refusals(events))

    run(main())


def test_the_armed_channel_takes_a_shell_with_a_pty_and_nothing_else(tmp_path: Path) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path, scopes=(Scope.DIAGNOSTICS, Scope.SHELL)) as h:
            h.channel.send(request(7, "shell"))
            await asyncio.sleep(0.2)  # the agent arms the shell and says "ready"
            with pytest.raises(asyncssh.ChannelOpenError):
                await open_pty(h, "id")  # exec, on the armed channel
            # That attempt used up the armed channel: the shell request fails, and
            # nothing else gets a PTY.
            answer = await h.channel.answer()
            assert (answer.id, answer.error) == (7, "failed")
            assert json.loads(answer.data[SHELL_EVENTS]) == {"ready": True}
            with pytest.raises(asyncssh.ChannelOpenError):
                await open_pty(h)
            await h.channel.still_serves()
            events = assert_sealed(await h.end())
        assert "refused: a command channel (exec) is not offered" in refusals(events)

    run(main())


def test_no_pty_on_the_protocol_channel(tmp_path: Path) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path, scopes=(Scope.DIAGNOSTICS, Scope.SHELL)) as h:
            with pytest.raises(asyncssh.ChannelOpenError):
                await h.conn.create_session(
                    asyncssh.SSHClientSession,
                    subsystem="toolkit-session-v1",
                    term_type="xterm",
                    encoding=None,
                )
            await h.channel.still_serves()
            assert_sealed(await h.end())

    run(main())
