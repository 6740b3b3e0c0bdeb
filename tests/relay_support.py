"""Relays for tests: ``toolkit relay`` in this process, agents behind it, technicians through it.

The autouse ``isolated`` fixture gives every test its own HOME; the relay's
host key goes into that HOME's ~/.ssh/known_hosts, which the agent and the
technician (both in this process) check, as they would for real.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from tests.integration.share_process import Person, end
from tests.session_support import Collector, Customer, identity, start_agent
from toolkit.agent.server import Agent
from toolkit.cli._relay import rendezvous_for
from toolkit.consent import Consent, Scope, parse_code
from toolkit.identity.store import Identity
from toolkit.relay._log import EventLog
from toolkit.relay._wire import register_host
from toolkit.relay.server import Relay, RelayOptions
from toolkit.secrets import Secret
from toolkit.session.commands import Command, parse
from toolkit.session.technician import TechnicianSession
from toolkit.transport.relay import AgentRendezvous, RelayAddress, RelayRoute, connect_through
from toolkit.transport.ssh import ConsentAsk

#: Reconnect quickly in tests (the real default starts at half a second).
FAST_BACKOFF = (0.05, 0.2)


def host_key(path: Path) -> Path:
    """A relay host key file (Ed25519, mode 0600)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    return path


def trust(port: int, key: Path, home: Path | None = None, host: str = "127.0.0.1") -> None:
    """Add the relay's host key to ~/.ssh/known_hosts (of ``home``, default $HOME)."""
    ssh = (home or Path(os.environ["HOME"])) / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    public = key.with_name(key.name + ".pub").read_text().split()
    with (ssh / "known_hosts").open("a") as f:
        f.write(f"[{host}]:{port} {public[0]} {public[1]}\n")


class Lines(io.StringIO):
    """The relay's JSON-lines log, kept."""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.getvalue().splitlines()]
        return [e for e in lines if name is None or e["event"] == name]


@dataclass
class RunningRelay:
    relay: Relay
    log: Lines
    key: Path

    @property
    def port(self) -> int:
        return self.relay.address[1]

    @property
    def route(self) -> RelayRoute:
        return RelayRoute(RelayAddress("127.0.0.1", port=self.port))


@asynccontextmanager
async def running_relay(
    root: Path, *, port: int = 0, key: Path | None = None, trusted: bool = True, **options: Any
) -> AsyncIterator[RunningRelay]:
    key = key or host_key(root / "relay" / "host_key")
    log = Lines()
    relay = Relay(RelayOptions(host_key=key, port=port, **options), EventLog(log))
    await relay.start()
    if trusted:
        trust(relay.address[1], key)
    try:
        yield RunningRelay(relay, log, key)
    finally:
        await relay.close()


class RelayProcess:
    """A running ``toolkit relay`` process; its first log line (``listening``) is read."""

    def __init__(self, proc: subprocess.Popen[str], stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"toolkit relay did not start: {stderr.read_text()}")
        self.listening = json.loads(line)
        self.port = int(self.listening["port"])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> tuple[str, str]:
        """SIGTERM it; the rest of its stdout (the log) and all its stderr."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(10) == 0
        assert self.proc.stdout is not None
        return self.proc.stdout.read(), self.stderr.read_text()


@contextmanager
def relay_process(
    operator: Person, key: Path, port: int = 0, *options: str
) -> Iterator[RelayProcess]:
    """``toolkit relay --listen 127.0.0.1:PORT --host-key KEY OPTIONS`` run by ``operator``."""
    stderr = operator.root / f"relay-{time.monotonic_ns()}.err"
    with stderr.open("w") as f:
        proc = operator.popen(
            "relay", "--listen", f"127.0.0.1:{port}", "--host-key", key, *options, stderr=f
        )
    try:
        yield RelayProcess(proc, stderr)
    finally:
        end(proc)


@dataclass
class RelayedAgent:
    agent: Agent
    rendezvous: AgentRendezvous
    screen: Collector
    customer: Customer
    said: list[str] = field(default_factory=list)

    @property
    def code(self) -> Secret:
        return parse_code(self.agent.codes.current.display.reveal())


async def relayed_agent(
    root: Path,
    route: RelayRoute,
    *,
    customer: Customer | None = None,
    offered: Sequence[Scope] = (Scope.DIAGNOSTICS,),
    ttl: float = 600.0,
) -> RelayedAgent:
    """An agent behind a rendezvous at ``route``, as toolkit share --relay starts one.

    ``screen`` is what the customer sees (codes only once the relay holds their name).
    """
    made: list[AgentRendezvous] = []

    def rendezvous(agent: Agent) -> AgentRendezvous:
        made.append(rendezvous_for(agent, route, backoff=FAST_BACKOFF))
        return made[0]

    agent, screen, customer = await start_agent(
        root, customer=customer, offered=offered, ttl=ttl, tunnel=rendezvous
    )
    return RelayedAgent(agent, made[0], screen, customer)


async def consent_through(
    route: RelayRoute, code: Secret, who: Identity | None = None, ticket: str = "T-1"
) -> tuple[asyncssh.SSHClientConnection, Consent]:
    ask = ConsentAsk(who or identity(), ticket, frozenset({Scope.DIAGNOSTICS}), code)
    return await connect_through(route, ask)


async def session_through(
    route: RelayRoute, code: Secret, path: Path, who: Identity | None = None
) -> TechnicianSession:
    """The technician's session with the agent behind ``code``'s rendezvous."""
    who = who or identity()
    conn, consent = await consent_through(route, code, who)
    return await TechnicianSession.start(conn, consent, who, "relay", path=path)


def command(line: str) -> Command:
    parsed = parse(line)
    assert parsed is not None
    return parsed


async def raw_client(
    port: int,
    *,
    source: str = "127.0.0.1",
    key: asyncssh.SSHKey | None = None,
    username: str = "agent",
) -> asyncssh.SSHClientConnection:
    """A bare SSH client of the relay at 127.0.0.1:``port``, from ``source`` (any 127.x.y.z).

    What an attacker would write: it trusts whatever host key answers and offers
    ``key`` (default: a fresh one, as a throwaway key of toolkit share is).
    """
    return await asyncssh.connect(
        "127.0.0.1",
        port,
        local_addr=(source, 0),
        username=username,
        known_hosts=None,
        client_keys=[key or asyncssh.generate_private_key("ssh-ed25519")],
        agent_path=None,
        config=[],
        preferred_auth="publickey",
    )


async def try_register(conn: asyncssh.SSHClientConnection, name: int = 0) -> str | None:
    """Register a rendezvous (``name`` 0: a new one); its name, or None if refused."""
    try:
        listener = await conn.create_server(lambda *_: None, register_host(600), name)
    except asyncssh.ChannelListenError:
        return None
    return str(listener.get_port())


async def eventually(condition: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


__all__ = [
    "FAST_BACKOFF",
    "Lines",
    "RelayProcess",
    "RelayedAgent",
    "RunningRelay",
    "command",
    "consent_through",
    "eventually",
    "host_key",
    "raw_client",
    "relay_process",
    "relayed_agent",
    "running_relay",
    "session_through",
    "trust",
    "try_register",
]
