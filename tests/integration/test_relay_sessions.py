"""Sessions through ``toolkit relay`` in this process: drops, restarts, names, and many at once.

Subprocess runs of the same (real commands, separate HOMEs) are in
test_relay_process.py; these stage the timing precisely and stay fast.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.helpers import allowed_signers_line
from tests.relay_support import (
    RelayedAgent,
    RunningRelay,
    command,
    consent_through,
    eventually,
    raw_client,
    relayed_agent,
    running_relay,
    session_through,
    try_register,
)
from tests.session_support import MARKER, identity
from tests.threats.agent_support import assert_sealed
from toolkit.consent import CodeExpired, CodeState, nameplate_of, parse_code
from toolkit.errors import TransportError
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.relay._wire import register_host
from toolkit.session.client import ConnectionLost
from toolkit.transcript.verify import Verdict, examine
from toolkit.transport.relay import RelayAddress, RelayRoute, dial


def run(coro: Any, seconds: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, seconds))


def test_a_whole_session_through_the_relay(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            agent = await relayed_agent(tmp_path, relay.route)
            name = agent.rendezvous.name
            shown = agent.agent.codes.current.display.reveal()
            assert shown.startswith(f"{name}-") and len(name) == 3
            assert agent.agent.address == ("127.0.0.1", relay.port)
            who = identity()
            session = await session_through(relay.route, agent.code, tmp_path / "t.cast", who)
            result = await session.execute(command(f"run echo {MARKER}"))
            assert result.stdout == f"{MARKER}\n".encode()
            path = await session.end("done")
            end = await asyncio.wait_for(agent.agent.wait(), 10)
        events = assert_sealed(end)
        assert any(e.get("argv") == ["echo", MARKER] for e in events)
        report = examine(path, AllowedSigners.from_text(allowed_signers_line(who.signer)))
        assert report.verdict is Verdict.SEALED and report.end_reason == "done"

    run(main())


BRIDGE = """
import os, socket, sys, threading
host, port, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(marker, "a") as f:
    f.write("proxied\\n")
s = socket.create_connection((host, port))
def up():
    while data := os.read(0, 65536):
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while data := s.recv(65536):
    os.write(1, data)
"""


@pytest.mark.parametrize("block", ["Host proxied-relay", "Match final all"])
def test_a_proxy_command_in_ssh_config_is_followed_by_both_sides(
    tmp_path: Path, block: str
) -> None:
    """~/.ssh/config's ProxyCommand still carries the relay connection, also from a
    ``Match final`` block (toolkit's own batched TCP is only for addresses the
    config sends nowhere else)."""
    bridge = tmp_path / "bridge.py"
    bridge.write_text(BRIDGE)
    marker = tmp_path / "proxied"

    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            (Path(os.environ["HOME"]) / ".ssh" / "config").write_text(
                f"Host proxied-relay\n  HostName 127.0.0.1\n  Port {relay.port}\n"
                f"{block}\n  ProxyCommand {sys.executable} {bridge} %h %p {marker}\n"
            )
            route = RelayRoute(RelayAddress("proxied-relay"))
            agent = await relayed_agent(tmp_path, route)
            session = await session_through(route, agent.code, tmp_path / "t.cast")
            result = await session.execute(command(f"run echo {MARKER}"))
            assert result.stdout == f"{MARKER}\n".encode()
            await session.end("done")
            await asyncio.wait_for(agent.agent.wait(), 10)

    run(main())
    assert marker.read_text() == "proxied\n" * 2  # the agent's connection and the technician's


def test_a_wrong_rendezvous_name_is_a_network_error_that_says_so(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            agent = await relayed_agent(tmp_path, relay.route)
            name = agent.rendezvous.name
            other = "100" if name != "100" else "101"
            digits = agent.code.reveal()
            with pytest.raises(TransportError) as info:
                await consent_through(relay.route, parse_code(other + digits[3:]))
            text = info.value.diagnostics()
            assert f"rendezvous {other}" in text and "no such rendezvous" in text
            assert "first group" in text
            assert agent.agent.codes.current.tries_left == 3  # the agent never heard of it
            await agent.agent.stop("test over")

    run(main())


def test_an_expired_code_at_the_relay(tmp_path: Path) -> None:
    # The rendezvous lives as long as the code (and a little more, for the renewal);
    # an expired code is refused by the agent, and a fresh one (the customer asks for
    # it) keeps the same name.
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            agent = await relayed_agent(tmp_path, relay.route, ttl=1.5)
            old = agent.code
            name = agent.rendezvous.name
            await asyncio.sleep(1.6)
            with pytest.raises(CodeExpired):
                await consent_through(relay.route, old)
            agent.agent.fresh_code("the customer asked for a new code")
            await eventually(lambda: len(agent.screen.codes) >= 2)
            fresh = agent.code
            assert fresh.reveal() != old.reveal() and fresh.reveal().startswith(name)
            await eventually(lambda: relay.log.events("renew"))
            conn, _ = await consent_through(relay.route, fresh)
            conn.close()
            await agent.agent.stop("test over")

    run(main())


def test_the_relay_expires_a_rendezvous_nobody_renews(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path, max_ttl=1, cooldown=0) as relay:
            conn = await dial(relay.route)  # an agent that registers once, then goes quiet
            listener = await conn.create_server(lambda *_: None, register_host(600), 0)
            name = str(listener.get_port())
            await asyncio.sleep(1.1)  # the relay caps every rendezvous at --max-ttl
            with pytest.raises(TransportError, match="rendezvous expired"):
                await consent_through(relay.route, parse_code(f"{name}-000-000"))
            relay.relay.sweep()
            assert [e["name"] for e in relay.log.events("expire")] == [name]
            assert [e["name"] for e in relay.log.events("forget")] == [name]
            with pytest.raises(TransportError, match="no such rendezvous"):
                await consent_through(relay.route, parse_code(f"{name}-000-000"))
            conn.close()

    run(main())


def test_relay_restart_before_the_technician_joins_keeps_the_code(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            port, key = relay.port, relay.key
            agent = await relayed_agent(tmp_path, relay.route)
            code, name = agent.code, agent.rendezvous.name
        # The relay is gone: the agent keeps trying with backoff.
        await eventually(lambda: any("reconnecting" in line for line in agent.screen.lines))
        await asyncio.sleep(0.3)
        async with running_relay(tmp_path, port=port, key=key, trusted=False) as again:
            await eventually(lambda: agent.rendezvous.reconnects == 1)
            assert agent.rendezvous.name == name and agent.code.reveal() == code.reveal()
            assert any("the same code works" in line for line in agent.screen.lines)
            assert [e["asked"] for e in again.log.events("register")] == [name]
            session = await session_through(again.route, code, tmp_path / "t.cast")
            await session.end("done")
            end = await asyncio.wait_for(agent.agent.wait(), 10)
        assert_sealed(end)
        assert len(agent.screen.codes) == 1  # the customer never had to read out another

    run(main())


def test_a_drop_before_joining_keeps_the_name_reserved_for_its_agent(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            agent = await relayed_agent(tmp_path, relay.route)
            name = agent.rendezvous.name
            conn = agent.rendezvous._conn
            assert conn is not None
            conn.abort()  # the customer's network blinks
            await eventually(lambda: agent.rendezvous.reconnects == 1)
            assert agent.rendezvous.name == name
            assert [e["name"] for e in relay.log.events("renew")] == [name]
            conn2, _ = await consent_through(relay.route, agent.code)
            conn2.close()
            await agent.agent.stop("test over")

    run(main())


def test_relay_killed_mid_session_ends_it_on_both_sides_sealed_with_the_reason(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        who = identity()
        async with running_relay(tmp_path) as relay:
            agent = await relayed_agent(tmp_path, relay.route)
            session = await session_through(relay.route, agent.code, tmp_path / "t.cast", who)
            await session.execute(command("run echo before"))
            running = asyncio.ensure_future(session.execute(command("run sleep 20")))
            await asyncio.sleep(0.5)  # the command runs on the customer's machine
        # The relay is gone (every connection closed at once), mid-command.
        with pytest.raises(ConnectionLost) as info:
            await asyncio.wait_for(running, 10)
        assert "relay" in info.value.message
        path = await session.end(info.value.message)
        end = await asyncio.wait_for(agent.agent.wait(), 10)
        assert "relay" in end.reason
        assert agent.rendezvous.reconnects == 0  # a session that ran is not resumed
        events = assert_sealed(end)
        assert "relay" in events[-1].get("reason", "")
        report = examine(path, AllowedSigners.from_text(allowed_signers_line(who.signer)))
        assert report.verdict is Verdict.SEALED
        assert report.end_reason is not None and "relay" in report.end_reason

    run(main())


def test_a_hundred_sessions_at_once_through_one_relay_without_cross_talk(
    tmp_path: Path,
) -> None:
    count = 100

    async def one(i: int, route: Any) -> tuple[str, bytes, Any]:
        root = tmp_path / f"s{i}"
        agent = await relayed_agent(root, route)
        session = await session_through(route, agent.code, root / "tech.cast")
        marker = f"{MARKER}-{i:03d}"
        result = await session.execute(command(f"run echo {marker}"))
        await session.end("done")
        end = await asyncio.wait_for(agent.agent.wait(), 30)
        return marker, result.stdout, end

    async def main() -> None:
        # A load test: one address (loopback) registers and looks up far more than
        # an office would, so the per-address limits are lifted.
        async with running_relay(
            tmp_path, names_per_address=count, register_burst=count, lookup_burst=count * 2
        ) as relay:
            results = await asyncio.gather(*(one(i, relay.route) for i in range(count)))
            names = {e["name"] for e in relay.log.events("register")}
            assert len(names) == count
            # A hundred rendezvous fit in the shortest names (100-999): none is widened.
            assert {len(e["name"]) for e in relay.log.events("join")} == {3}
        for i, (marker, stdout, end) in enumerate(results):
            assert stdout == f"{marker}\n".encode()
            for path in (tmp_path / f"s{i}" / "tech.cast", end.transcript):
                text = path.read_text()
                assert marker in text
                assert text.count(MARKER) == text.count(marker)  # nobody else's marker

    run(main(), 120)


# -- a new code after the relay forgot the name -------------------------------------------


def forgotten(relay: RunningRelay, name: str) -> bool:
    """Whether the relay forgot ``name`` (its sweep, run now rather than every 5 s)."""
    relay.relay.sweep()
    return relay.relay.table.get(name) is None


async def forgotten_and_taken(
    relay: RunningRelay, agent: RelayedAgent
) -> tuple[str, asyncssh.SSHClientConnection]:
    """Until the share's code expired and the relay forgot its name; then another agent
    (another customer's, from another address) registers that name."""
    name = agent.rendezvous.name
    await eventually(lambda: agent.agent.codes.current.state is CodeState.EXPIRED)
    await eventually(lambda: forgotten(relay, name))
    other = await raw_client(relay.port, source="127.0.0.2")
    assert await try_register(other, int(name)) == name
    return name, other


def test_a_new_code_after_the_relay_gave_the_name_away_carries_a_name_held_for_this_agent(
    tmp_path: Path,
) -> None:
    # The relay keeps a name 5 s past its code and forgets it 60 s later; both are made
    # short here (--max-ttl caps the 5 s, the cool-down is 0) instead of waiting 65 s.
    async def main() -> None:
        async with running_relay(tmp_path, max_ttl=2, cooldown=0) as relay:
            agent = await relayed_agent(tmp_path, relay.route, ttl=2)
            mine = relay.log.events("register")[0]["key"]
            name, other = await forgotten_and_taken(relay, agent)
            agent.agent.fresh_code("you asked for a new code")
            await eventually(lambda: len(agent.screen.codes) >= 2)
            shown = parse_code(agent.screen.codes[-1].display.reveal())
            plate = nameplate_of(shown)
            held = relay.relay.table.get(plate)
            assert plate != name and held is not None
            assert held.owner == mine and held.holder is not None  # registered, for this agent
            assert agent.rendezvous.name == plate
            conn, consent = await consent_through(relay.route, shown)
            assert consent.host_key == agent.agent.host_key.blob  # this agent, reached
            conn.close()
            # The code made for the lost name never reached the screen.
            assert len(agent.screen.codes) == 2
            assert any("new rendezvous" in line for line in agent.screen.lines)
            other.close()
            await agent.agent.stop("test over")

    run(main())


def test_no_name_to_be_had_for_a_new_code_is_one_sentence_and_no_code(tmp_path: Path) -> None:
    # One new name per address and per key, for good: the agent had it, the relay forgot
    # it and gave it to another agent; there is nothing left for this one.
    async def main() -> None:
        async with running_relay(
            tmp_path, max_ttl=2, cooldown=0, register_burst=1, register_rate=0.001
        ) as relay:
            agent = await relayed_agent(tmp_path, relay.route, ttl=2)
            name, other = await forgotten_and_taken(relay, agent)
            before = list(agent.screen.lines)
            agent.agent.fresh_code("you asked for a new code")
            await eventually(lambda: any("no code" in line for line in agent.screen.lines))
            said = agent.screen.lines[len(before) :]
            told = [line for line in said if "no code" in line]
            assert len(told) == 1
            assert "too many new rendezvous from your address" in told[0]
            assert told[0].count(". ") == 0  # one sentence
            await asyncio.sleep(0.3)  # nothing else comes: the code made is never shown
            assert len(agent.screen.codes) == 1
            taken = relay.relay.table.get(name)
            assert taken is not None and taken.owner != relay.log.events("register")[0]["key"]
            other.close()
            await agent.agent.stop("test over")

    run(main())


def test_a_new_code_asked_for_while_the_relay_is_down_is_shown_once_it_is_back(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            port, key = relay.port, relay.key
            agent = await relayed_agent(tmp_path, relay.route)
            name = agent.rendezvous.name
        await eventually(lambda: any("reconnecting" in line for line in agent.screen.lines))
        agent.agent.fresh_code("you asked for a new code")
        await eventually(lambda: any("once it is back" in line for line in agent.screen.lines))
        assert len(agent.screen.codes) == 1  # no code whose name nobody holds
        async with running_relay(tmp_path, port=port, key=key, trusted=False) as again:
            await eventually(lambda: len(agent.screen.codes) == 2)
            shown = parse_code(agent.screen.codes[-1].display.reveal())
            assert nameplate_of(shown) == name == agent.rendezvous.name
            held = again.relay.table.get(name)
            assert held is not None and held.holder is not None
            conn, _ = await consent_through(again.route, shown)
            conn.close()
            await agent.agent.stop("test over")

    run(main())
