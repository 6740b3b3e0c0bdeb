"""Services registered at a real ``toolkit relay`` under stable names, reached by name.

The relay gives a name only to the host key its --agents file lists for it;
a technician reaches the service with ``RelayRoute(name=...)``; --technicians
applies unchanged. Consent here is the code (grants come from toolkit.grants):
the test knows each agent's code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.relay_support import (
    FAST_BACKOFF,
    RunningRelay,
    command,
    eventually,
    raw_client,
    running_relay,
)
from tests.session_support import (
    Collector,
    Customer,
    code_of,
    identity,
    make_catalogue,
    make_policy,
)
from toolkit.agent.host_key import HostKey, load_or_create
from toolkit.agent.server import Agent, AgentSettings
from toolkit.consent import Scope
from toolkit.errors import TransportError, UsageError
from toolkit.identity.keys import public_line
from toolkit.identity.store import Identity
from toolkit.relay._wire import register_name_host
from toolkit.relay.server import read_agents
from toolkit.session.technician import TechnicianSession
from toolkit.transport.relay import AgentRendezvous, RelayRoute, connect_through
from toolkit.transport.ssh import ConsentAsk


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def agents_file(path: Path, **keys: HostKey) -> Path:
    path.write_text("".join(f"{name} {public_line(k.blob)}\n" for name, k in keys.items()))
    return path


@asynccontextmanager
async def named_service(
    root: Path, relay: RunningRelay, name: str, key: HostKey
) -> AsyncIterator[tuple[Agent, AgentRendezvous]]:
    """A service agent at ``relay`` under ``name``, logged in with ``key``, as serve starts one."""
    customer = Customer()
    agent = Agent(
        AgentSettings(
            policy=make_policy(root),
            approver=customer,
            approve_fix=customer.approve_fix,
            catalogue=make_catalogue(),
            transcripts=root / f"transcripts-{name}",
            hostname=name,
            service=True,
        ),
        Collector(),
        host_key=key,
    )
    rendezvous = AgentRendezvous(
        relay.route,
        ttl=600,
        say=agent.observer.say,
        stable=name,
        login=key.signer,
        backoff=FAST_BACKOFF,
    )
    try:
        await rendezvous.open()
        await agent.start(tunnel=rendezvous)
        yield agent, rendezvous
    finally:
        await agent.stop("test over")
        rendezvous.close()


def by_name(relay: RunningRelay, name: str) -> RelayRoute:
    return replace(relay.route, name=name)


async def reach(
    relay: RunningRelay, name: str, agent: Agent, who: Identity | None = None
) -> tuple[asyncssh.SSHClientConnection, Any]:
    ask = ConsentAsk(who or identity(), "T-1", frozenset({Scope.DIAGNOSTICS}), code_of(agent))
    return await connect_through(by_name(relay, name), ask)


def test_each_service_is_reached_by_its_name_and_is_the_one_its_key_says(tmp_path: Path) -> None:
    keys = {"web-01": load_or_create(tmp_path / "k1"), "db.eu_2": load_or_create(tmp_path / "k2")}
    agents = read_agents(agents_file(tmp_path / "agents", **keys))

    async def main() -> None:
        async with running_relay(tmp_path, agents=agents) as relay, AsyncExitStack() as stack:
            services = {
                name: (await stack.enter_async_context(
                    named_service(tmp_path, relay, name, key)))[0]
                for name, key in keys.items()
            }  # fmt: skip
            for name, agent in services.items():
                conn, consent = await reach(relay, name, agent)
                assert consent.host_key == keys[name].blob  # this service, not the other
                who = identity()
                tech = await TechnicianSession.start(
                    conn, consent, who, "relay", path=tmp_path / f"{name}.cast"
                )
                result = await tech.execute(command(f"run echo {name}"))
                assert result.stdout == f"{name}\n".encode()
                await tech.end("done")
            registered = relay.log.events("register")
            assert {(e["name"], e["stable"]) for e in registered} == {
                ("web-01", True),
                ("db.eu_2", True),
            }
            assert {e["key"] for e in registered} == {k.fingerprint for k in keys.values()}

    run(main())


def test_another_key_never_gets_the_name_and_is_told_why(tmp_path: Path) -> None:
    owner, thief = load_or_create(tmp_path / "owner"), load_or_create(tmp_path / "thief")
    agents = read_agents(agents_file(tmp_path / "agents", **{"web-01": owner}))

    async def main() -> None:
        async with running_relay(tmp_path, agents=agents) as relay:
            with pytest.raises(TransportError) as refused:
                async with named_service(tmp_path / "t", relay, "web-01", thief):
                    pass
            assert "refused the name web-01" in refused.value.message
            assert "belongs to another key at this relay" in refused.value.message
            with pytest.raises(TransportError, match="lists no agent called web-02"):
                async with named_service(tmp_path / "o", relay, "web-02", owner):
                    pass
            # Nor while the owner holds it: a raw client with the thief's key is refused too.
            async with named_service(tmp_path / "o", relay, "web-01", owner) as (agent, _):
                raw = await raw_client(relay.port, key=thief.ssh_key)
                with pytest.raises(asyncssh.ChannelListenError):
                    await raw.create_server(lambda *_: None, register_name_host("web-01"), 0)
                raw.close()
                conn, consent = await reach(relay, "web-01", agent)
                assert consent.host_key == owner.blob
                conn.close()
            refusals = relay.log.events("register_refused")
            assert len(refusals) == 3 and all(e["key"] == thief.fingerprint or
                                              e["asked"] == "web-02" for e in refusals)  # fmt: skip

    run(main())


def test_a_relay_without_agents_keeps_no_names(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            with pytest.raises(TransportError, match="this relay keeps no agent names"):
                async with named_service(tmp_path, relay, "web-01", HostKey()):
                    pass

    run(main())


def test_a_name_not_connected_is_said_so_and_comes_back_when_its_service_does(
    tmp_path: Path,
) -> None:
    key = load_or_create(tmp_path / "key")
    agents = read_agents(agents_file(tmp_path / "agents", **{"web-01": key}))

    async def main() -> None:
        async with running_relay(tmp_path, agents=agents) as relay:
            with pytest.raises(TransportError) as refused:
                ask = ConsentAsk(identity(), "T-1", frozenset({Scope.DIAGNOSTICS}), _any_code())
                await connect_through(by_name(relay, "web-01"), ask)
            assert "cannot reach the agent web-01" in refused.value.message
            assert "no agent called web-01 is connected to this relay" in refused.value.message
            async with named_service(tmp_path, relay, "web-01", key) as (agent, _):
                conn, _consent = await reach(relay, "web-01", agent)
                conn.close()
            await eventually(lambda: relay.relay.table.get("web-01") is None)
            gone = relay.log.events("cancel") + relay.log.events("unregister")
            assert {e["name"] for e in gone} == {"web-01"}
            # The service restarts (the same key): the name is its own again.
            async with named_service(tmp_path, relay, "web-01", key) as (agent, _):
                conn, consent = await reach(relay, "web-01", agent)
                assert consent.host_key == key.blob
                conn.close()

    run(main())


def _any_code() -> Any:
    from toolkit.consent import parse_code

    return parse_code("123-456-789")


def test_the_service_reconnects_and_keeps_its_name_after_a_drop(tmp_path: Path) -> None:
    key = load_or_create(tmp_path / "key")
    agents = read_agents(agents_file(tmp_path / "agents", **{"web-01": key}))

    async def main() -> None:
        async with (
            running_relay(tmp_path, agents=agents) as relay,
            named_service(tmp_path, relay, "web-01", key) as (agent, rendezvous),
        ):
            for connection in list(relay.relay._connections):
                assert connection.conn is not None
                connection.conn.close()  # the relay drops the service
            await eventually(lambda: rendezvous.reconnects == 1)
            await eventually(lambda: relay.relay.table.get("web-01") is not None)
            conn, consent = await reach(relay, "web-01", agent)
            assert consent.host_key == key.blob
            conn.close()

    run(main())


def test_the_relays_technicians_list_applies_to_names(tmp_path: Path) -> None:
    key = load_or_create(tmp_path / "key")
    listed = identity()
    agents = read_agents(agents_file(tmp_path / "agents", **{"web-01": key}))

    async def main() -> None:
        technicians = frozenset({listed.signer.public_blob})
        async with (
            running_relay(tmp_path, agents=agents, technicians=technicians) as relay,
            named_service(tmp_path, relay, "web-01", key) as (agent, _),
        ):
            stranger = Identity("Eve", "eve@example.com", identity().signer, "test")
            with pytest.raises(TransportError, match="admits listed technicians only"):
                await reach(relay, "web-01", agent, stranger)
            conn, _consent = await reach(relay, "web-01", agent, listed)
            conn.close()

    run(main())


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("web-* {key}", "'web-*' is not an agent name"),
        ("123 {key}", "'123' is not an agent name"),
        ("web-01 cert-authority {key}", "cert-authority"),
        ('web-01 valid-before="20300101" {key}', "valid-after/valid-before"),
        ("# nobody\n", "lists no agents"),
    ],
)
def test_an_agents_file_that_cannot_say_whose_a_name_is_is_refused(
    tmp_path: Path, line: str, says: str
) -> None:
    path = tmp_path / "agents"
    path.write_text(line.format(key=public_line(HostKey().blob)) + "\n")
    with pytest.raises(UsageError, match=says.replace("*", r"\*").replace("(", r"\(")):
        read_agents(path)


def test_several_names_on_a_line_and_several_keys_for_a_name(tmp_path: Path) -> None:
    one, two = HostKey(), HostKey()
    path = tmp_path / "agents"
    path.write_text(
        f"web-01,web-02 {public_line(one.blob)}\nweb-02 {public_line(two.blob)} new key\n"
    )
    agents = read_agents(path)
    assert agents == {"web-01": frozenset({one.blob}), "web-02": frozenset({one.blob, two.blob})}


def test_a_technician_name_that_is_not_an_agent_name_is_a_usage_error() -> None:
    from toolkit.transport.relay import RelayAddress

    for bad in ("123", "web 01", "a" * 65, "\x1b[2J"):
        with pytest.raises(UsageError, match="is not an agent name"):
            RelayRoute(RelayAddress("relay.example"), name=bad)
