"""The agent listens, then shows its code before its SSH server's modules have loaded.

toolkit share prints the code as soon as the address is known; the SSH
server (asyncssh, SPAKE2, the session) comes up right after, long before a
technician can type the code, and a connection that comes sooner waits in
the listen backlog.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from tests.session_support import Collector, Customer, connect_to, make_policy
from toolkit.agent import server
from toolkit.agent.server import Agent, AgentSettings
from toolkit.consent import OneTimeCode, parse_code
from toolkit.errors import TransportError


def _agent(tmp_path: Path, screen: Collector) -> Agent:
    customer = Customer()
    settings = AgentSettings(
        policy=make_policy(tmp_path), approver=customer, approve_fix=customer.approve_fix
    )
    return Agent(settings, screen)


def test_the_code_is_shown_before_asyncio_and_asyncssh_load() -> None:
    # Not through tests.session_support: it imports asyncssh itself.
    code = """
import sys
from toolkit.agent.server import Agent, AgentSettings
from toolkit.policy import Policy

loaded = []

class Screen:
    def new_code(self, code):
        loaded.append(sorted(m for m in ("asyncio", "asyncssh", "spake2") if m in sys.modules))

    def say(self, message):
        pass

settings = AgentSettings(policy=Policy.from_toml("", source="test"), approver=None,
                         approve_fix=None)
agent = Agent(settings, Screen())
assert agent.listen()

import asyncio

async def main():
    assert await agent.start() == agent.address
    await agent.stop("done")
    await agent.wait()

asyncio.run(main())
print(loaded, "asyncssh" in sys.modules)
"""
    root = Path(__file__).parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert done.stdout.strip().splitlines()[-1] == "[[]] True"


def _run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def test_a_connection_before_the_server_is_up_waits_for_it(tmp_path: Path) -> None:
    async def main() -> None:
        agent = _agent(tmp_path, Collector())
        early: list[asyncio.Task[Any]] = []

        class Eager(Collector):
            def new_code(self, code: OneTimeCode) -> None:  # connects as the code is shown
                super().new_code(code)
                secret = parse_code(code.display.reveal())
                early.append(asyncio.ensure_future(connect_to(agent, code=secret)))

        agent.observer = Eager()
        port = (await agent.start())[1]
        assert port == agent.address[1] != 0
        conn, consent = await early[0]
        assert consent.granted
        conn.close()
        await agent.stop("done")
        await agent.wait()

    _run(main())


def test_a_port_in_use_is_a_transport_error_worded_as_before(tmp_path: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        with pytest.raises(TransportError) as caught:
            _run(_agent(tmp_path, Collector()).start("127.0.0.1", port))  # type: ignore[arg-type]
    finally:
        taken.close()
    assert caught.value.message == (
        f"Cannot listen on 127.0.0.1:{port}: error while attempting to bind on address "
        f"('127.0.0.1', {port}): address already in use."
    )


def test_a_name_with_several_addresses_is_left_to_asyncio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        screen = Collector()
        agent = _agent(tmp_path, screen)
        host, port = await agent.start("127.0.0.1", 0)
        assert len(screen.codes) == 1 and host == "127.0.0.1" and port != 0
        assert agent.address == (host, port)
        await agent.stop("done")
        await agent.wait()

    monkeypatch.setattr(server, "_listening_socket", lambda host, port: None)
    _run(main())
