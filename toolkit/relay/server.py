"""``toolkit relay``: an SSH server that only joins technicians to waiting agents.

It grants exactly three things (docs/relay.md):

- an agent's ``tcpip-forward`` on ``toolkit-rendezvous;ttl=N``: a rendezvous,
  named by the relay (:mod:`toolkit.relay._table`);
- a service's ``tcpip-forward`` on ``toolkit-agent;name=NAME``: its stable
  name, only for the key ``agents`` (an allowed_signers file) lists for NAME;
- a technician's ``direct-streamlocal`` to ``.../NAME``: a channel spliced to
  a new ``forwarded-tcpip`` channel on that agent's connection.

Everything else (sessions, shells, exec, PTYs, agent and X11 forwarding, any
other forward) is refused, as asyncssh does by default. The relay only ever
sees the bytes of an SSH connection that runs end to end between technician
and agent; it counts them and never looks inside. Lookups are rate-limited
per source address; new registrations are rate-limited per source address
and per key, and each holds a bounded number of names at once (so that
nobody takes the name space); ``technicians`` (keys from an allowed_signers
or authorized_keys file) restricts who may open a channel to a rendezvous.
A refused registration's reason reaches the agent as an SSH debug message
just before the refusal, which carries no text of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from toolkit.addresses import source_of
from toolkit.errors import TransportError, UsageError
from toolkit.identity.keys import blob_from_line, fingerprint
from toolkit.inputs import read_regular, read_text
from toolkit.relay._limits import RateLimit
from toolkit.relay._log import EventLog, clip
from toolkit.relay._table import DEFAULT_COOLDOWN, DEFAULT_MAX_TTL, Refused, Rendezvous, Table
from toolkit.relay._wire import (
    MAX_PACKET,
    NOT_A_TECHNICIAN,
    SERVER_VERSION,
    WINDOW,
    is_stable_name,
    name_of_path,
    parse_register_host,
    parse_register_name,
)
from toolkit.text import printable
from toolkit.transport.batching import DirectTCP
from toolkit.transport.tuning import CIPHERS, release_memory

SWEEP_INTERVAL = 5.0
#: A host key file larger than this is not one (an RSA key of 16384 bits is about 12 KiB).
HOST_KEY_LIMIT = 64 << 10
# Why a registration was refused: logged, and sent to the agent, which shows it.
NEW_FROM_ADDRESS = "too many new rendezvous from your address; try again in a minute"
NEW_FOR_KEY = "too many new rendezvous for your key; try again in a minute"
# How often the relay gives memory that sessions freed back to the system.
TRIM_INTERVAL = 60.0
#: (rendezvous name, "up" technician to agent | "down" agent to technician, bytes): tests only.
Tap = Callable[[str, str, bytes], None]


@dataclass(frozen=True)
class RelayOptions:
    """How ``toolkit relay`` runs; the defaults need no configuration."""

    host: str = "127.0.0.1"
    port: int = 0
    host_key: Path | None = None  # default: <data dir>/relay/host_key, made on first start
    technicians: frozenset[bytes] | None = None  # public key blobs; None admits anyone
    #: Stable names and the host keys that may hold each (--agents); None: no names.
    agents: dict[str, frozenset[bytes]] | None = None
    max_ttl: float = DEFAULT_MAX_TTL
    cooldown: float = DEFAULT_COOLDOWN
    lookup_rate: float = 1.0
    lookup_burst: int = 20
    per_connection: int = 4
    # Registrations. An office behind one NAT address sharing 32 screens at once stays
    # under these; one address fills 32 of the 65,436 names (docs/relay.md, "Limits").
    names_per_address: int = 32
    names_per_key: int = 16
    register_rate: float = 0.2  # new names per second per address, and per key
    register_burst: int = 16
    login_timeout: float = 30.0
    keepalive_interval: float = 30.0

    def __post_init__(self) -> None:
        if self.max_ttl <= 0 or self.cooldown < 0:
            raise UsageError(
                "The relay's --max-ttl must be positive and its cool-down not negative."
            )
        if self.lookup_rate <= 0 or self.lookup_burst < 1:
            raise UsageError("The relay's lookup rate must be positive and its burst at least 1.")
        if self.register_rate <= 0 or self.register_burst < 1:
            raise UsageError(
                "The relay's registration rate must be positive and its burst at least 1."
            )
        if self.names_per_address < 1 or self.names_per_key < 1:
            raise UsageError("The relay's names per address and per key must be at least 1.")


def read_technicians(path: Path) -> frozenset[bytes]:
    """The public keys in an allowed_signers or authorized_keys file (either works)."""
    text = read_text(path, what="the technicians file")
    shown = printable(str(path), 200)
    keys: set[bytes] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            tokens = line.split()
        for i in range(len(tokens) - 1):  # principals and options come before the key
            try:
                keys.add(blob_from_line(f"{tokens[i]} {tokens[i + 1]}"))
                break
            except Exception:  # noqa: S112 (not the key yet: an option or a principal)
                continue
        else:
            raise UsageError(f"{shown}, line {lineno}: no public key on this line.")
    if not keys:
        raise UsageError(f"{shown} lists no technician keys: nobody could connect.")
    return frozenset(keys)


def read_agents(path: Path) -> dict[str, frozenset[bytes]]:
    """--agents: an allowed_signers file whose principals are agent names (``NAME KEY``).

    A line may give several names (``web-01,web-02 KEY``) and a name several
    lines (a key being replaced). Patterns, cert-authority and validity
    options are refused: each name is given to exact keys.
    """
    from toolkit.identity.allowed_signers import AllowedSigners

    signers = AllowedSigners.from_file(path)
    shown = printable(str(path), 200)
    names: dict[str, set[bytes]] = {}
    for entry in signers.entries:
        where = f"{shown}, line {entry.lineno}"
        if entry.cert_authority or entry.valid_after or entry.valid_before:
            raise UsageError(
                f"{where}: cert-authority and valid-after/valid-before do not apply to "
                "agents; list each agent's host key (toolkit serve --show-host-key)."
            )
        for name in entry.principals.split(","):
            if not is_stable_name(name):
                raise UsageError(
                    f"{where}: '{printable(name, 80)}' is not an agent name (1 to 64 letters, "
                    "digits, '.', '_' or '-', not digits only; no patterns)."
                )
            names.setdefault(name, set()).add(entry.key_blob)
    if not names:
        raise UsageError(f"{shown} lists no agents: no name could be held.")
    return {name: frozenset(keys) for name, keys in names.items()}


def load_host_key(path: Path | None) -> tuple[asyncssh.SSHKey, Path]:
    """The relay's host key; made (Ed25519, mode 0600) at the default place if missing."""
    from toolkit import paths

    if path is None:
        path = paths.ensure_private_dir(paths.data_dir() / "relay") / "host_key"
        if not path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment="toolkit relay")
            paths.atomic_write(path, key.export_private_key(), 0o600)
    data = read_regular(path, what="the relay's host key", limit=HOST_KEY_LIMIT)
    try:
        return asyncssh.import_private_key(data), path
    except asyncssh.KeyImportError as exc:
        raise UsageError(
            f"Cannot read the relay's host key {printable(str(path), 200)}: "
            f"{printable(str(exc) or 'not a private key')}."
        ) from None


class Splice(asyncssh.SSHTCPSession[bytes], asyncssh.SSHUNIXSession[bytes]):
    """One side of a joined pair of channels: what one receives, the other sends."""

    def __init__(self, relay: Relay, name: str, direction: str) -> None:
        self._relay = relay
        self._name = name
        self._direction = direction  # of the bytes this side receives
        self._chan: Any = None
        self._peer: Splice | None = None
        self._pending: list[bytes] = []
        self._eof = False
        self._paused = False
        self.received = 0

    def pair(self, peer: Splice) -> None:
        self._peer, peer._peer = peer, self

    def connection_made(self, chan: Any) -> None:
        self._chan = chan
        for data in self._pending:
            chan.write(data)
        self._pending.clear()
        if self._eof:
            chan.write_eof()
        if self._paused:
            chan.pause_reading()

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self.received += len(data)
        tap = self._relay.tap
        if tap is not None:
            tap(self._name, self._direction, data)
        if self._peer is not None:
            self._peer.send(data)

    def send(self, data: bytes) -> None:
        if self._chan is None:
            self._pending.append(data)
        else:
            self._chan.write(data)

    def eof_received(self) -> bool:
        if self._peer is not None:
            self._peer.send_eof()
        return True  # half-close: the other direction may still flow

    def send_eof(self) -> None:
        self._eof = True
        if self._chan is not None:
            with contextlib.suppress(Exception):
                self._chan.write_eof()

    def pause_writing(self) -> None:
        if self._peer is not None:
            self._peer.hold(True)

    def resume_writing(self) -> None:
        if self._peer is not None:
            self._peer.hold(False)

    def hold(self, paused: bool) -> None:
        """Stop (or resume) reading this side: its peer's window is full."""
        self._paused = paused
        if self._chan is not None:
            if paused:
                self._chan.pause_reading()
            else:
                self._chan.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        peer, self._peer = self._peer, None
        if self._chan is not None:
            self._chan.close()
            self._chan = None
        if peer is not None:
            peer._peer = None
            self._relay.parted(self._name, self, peer)
            peer.close()

    def close(self) -> None:
        if self._chan is not None:
            self._chan.close()
            self._chan = None


class _Registration(asyncssh.SSHListener):
    """What asyncssh keeps for an agent's forward; closing it (cancel-tcpip-forward) gives up."""

    def __init__(self, relay: Relay, holder: RelayConnection, rendezvous: Rendezvous) -> None:
        super().__init__()
        self._relay = relay
        self._holder = holder
        self._name = rendezvous.name
        self._route = rendezvous.route

        self._port = rendezvous.port

    def get_port(self) -> int:
        return self._port

    def close(self) -> None:
        self._relay.cancel(self._holder, self._name, self._route)

    async def wait_closed(self) -> None:
        return None


_ids = itertools.count(1)

#: Requests refused on one connection before the relay hangs up on it: a client
#: asking again and again would otherwise make a log line of each.
MAX_REFUSED = 32
#: Renewals of a name one holds: 8 at once, then one every 10 seconds, per key.
RENEW_BURST = 8
RENEW_RATE = 0.1
RENEWING_TOO_OFTEN = "the rendezvous was renewed too often; wait a little and ask again"


class RelayConnection(asyncssh.SSHServer):
    """One client: an agent that registers, a technician that joins, or both."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.id = next(_ids)
        self.conn: asyncssh.SSHServerConnection | None = None
        self.address = "?"
        self.source = "?"  # what per-address limits count it as (an IPv6 /64)
        self.port = 0
        self.key: str | None = None
        self.key_blob: bytes | None = None
        self.technician = False
        self.refused = 0  # requests refused on this connection, towards MAX_REFUSED

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        if peer:
            self.address, self.port = str(peer[0]), int(peer[1])
            self.source = source_of(self.address)
        self.relay.log.emit("connect", conn=self.id, peer=f"{self.address}:{self.port}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.lost(self, exc)

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        blob = key.public_data
        self.key, self.key_blob = fingerprint(blob), blob
        allowed = self.relay.options.technicians
        self.technician = allowed is None or blob in allowed
        return True  # anyone may register a rendezvous; joining one is checked later

    def auth_completed(self) -> None:
        self.relay.log.emit("auth", conn=self.id, key=self.key, technician=self.technician)

    # -- what is granted -----------------------------------------------------------

    def server_requested(self, listen_host: str, listen_port: int) -> Any:
        return self.relay.register(self, listen_host, listen_port)

    def unix_connection_requested(self, dest_path: str) -> Any:
        return self.relay.join(self, dest_path)

    # -- what is refused (asyncssh refuses these by default; the log says so) ------

    def _refuse(self, what: str) -> bool:
        self.relay.log.emit("refused", conn=self.id, what=what)
        return False

    def session_requested(self) -> bool:
        return self._refuse("session")

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return self._refuse("direct-tcpip")

    def unix_server_requested(self, listen_path: str) -> bool:
        return self._refuse("streamlocal-forward")


class Relay:
    """The rendezvous service. ``start()``, then ``wait()`` or ``close()``."""

    def __init__(self, options: RelayOptions, log: EventLog) -> None:
        self.options = options
        self.log = log
        self.table = Table(
            max_ttl=options.max_ttl,
            cooldown=options.cooldown,
            per_holder=options.per_connection,
            per_source=options.names_per_address,
            per_owner=options.names_per_key,
        )
        self.limit = RateLimit(options.lookup_rate, options.lookup_burst)
        self.new_by_source = RateLimit(options.register_rate, options.register_burst)
        self.new_by_key = RateLimit(options.register_rate, options.register_burst)
        # Renewals of one's own name: one per new code the customer asks for, so a few a
        # minute at most; a client renewing in a loop is refused, then hung up on.
        self.renewals = RateLimit(RENEW_RATE, RENEW_BURST)
        self.tap: Tap | None = None
        self.address: tuple[str, int] = ("", 0)
        self.host_key_fingerprint = ""
        self.sessions = 0  # spliced pairs open now
        self._connections: set[RelayConnection] = set()
        self._server: asyncssh.SSHAcceptor | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._expired: set[str] = set()
        self._trimmed = time.monotonic()
        self._closed = asyncio.Event()

    async def start(self) -> tuple[str, int]:
        key, key_path = load_host_key(self.options.host_key)
        self.host_key_fingerprint = fingerprint(key.public_data)
        opts = self.options
        try:
            self._server = await asyncssh.create_server(
                self._connection,
                opts.host,
                opts.port,
                tunnel=DirectTCP(),  # plain TCP, with asyncssh's writes batched per loop turn
                server_host_keys=[key],
                server_version=SERVER_VERSION,
                encryption_algs=CIPHERS,
                public_key_auth=True,
                password_auth=False,
                kbdint_auth=False,
                gss_host=None,
                allow_pty=False,
                agent_forwarding=False,
                x11_forwarding=False,
                allow_scp=False,
                login_timeout=opts.login_timeout,
                keepalive_interval=opts.keepalive_interval,
                keepalive_count_max=3,
                window=WINDOW,
                max_pktsize=MAX_PACKET,
                encoding=None,
            )
        except OSError as exc:
            raise TransportError(
                f"Cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}.",
                hint="Choose another address with --listen HOST:PORT.",
            ) from None
        sockname = self._server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        self.log.emit(
            "listening",
            address=self.address[0],
            port=self.address[1],
            host_key=self.host_key_fingerprint,
            host_key_file=str(key_path),
            technicians=None if opts.technicians is None else len(opts.technicians),
            agents=None if opts.agents is None else len(opts.agents),
        )
        return self.address

    def _connection(self) -> RelayConnection:
        connection = RelayConnection(self)
        self._connections.add(connection)
        return connection

    async def wait(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        for connection in list(self._connections):
            if connection.conn is not None:
                connection.conn.close()
        self.log.emit("stopped")
        self._closed.set()

    # -- events from connections ---------------------------------------------------------

    def lost(self, who: RelayConnection, exc: Exception | None) -> None:
        self._connections.discard(who)
        for rendezvous in self.table.release(who):
            event = "unregister" if rendezvous.stable else "waiting"
            self.log.emit(event, name=rendezvous.name, conn=who.id)
        self.log.emit("disconnect", conn=who.id, why=clip(str(exc)) if exc else "closed")

    def register(self, who: RelayConnection, listen_host: str, listen_port: int) -> Any:
        stable = parse_register_name(listen_host)
        if stable is not None:
            return self._register_name(who, stable, listen_host)
        ttl = parse_register_host(listen_host)
        if ttl is None or who.key is None:
            return self._refuse_register(who, "not a rendezvous registration")
        name = str(listen_port) if listen_port else None
        held = self.table.get(name) if name is not None else None
        if held is None or held.owner != who.key:  # a new name: not a renewal of one's own
            if not self.new_by_source.allow(who.source):
                return self._refuse_register(who, NEW_FROM_ADDRESS, name)
            if not self.new_by_key.allow(who.key):
                return self._refuse_register(who, NEW_FOR_KEY, name)
        elif not self.renewals.allow(who.key):
            return self._refuse_register(who, RENEWING_TOO_OFTEN, name)
        try:
            rendezvous, renewed = self.table.register(
                who.key, who, ttl, name, route=listen_host, source=who.source
            )
        except Refused as exc:
            return self._refuse_register(who, exc.reason, name)
        self._expired.discard(rendezvous.name)
        self.log.emit(
            "renew" if renewed else "register",
            name=rendezvous.name,
            conn=who.id,
            key=who.key,
            ttl=round(rendezvous.deadline - time.monotonic()),
            asked=name,
        )
        return _Registration(self, who, rendezvous)

    def _register_name(self, who: RelayConnection, name: str, route: str) -> Any:
        """A service asks for its stable name: only the key --agents lists for it gets it."""
        agents = self.options.agents
        if agents is None:
            return self._refuse_register(who, "this relay keeps no agent names", name)
        keys = agents.get(name)
        if keys is None:
            return self._refuse_register(who, f"this relay lists no agent called {name}", name)
        if who.key is None or who.key_blob not in keys:
            return self._refuse_register(
                who, f"the name {name} belongs to another key at this relay", name
            )
        held = self.table.get(name)
        if held is not None and not self.renewals.allow(who.key):
            return self._refuse_register(who, RENEWING_TOO_OFTEN, name)
        try:
            rendezvous, taken_over = self.table.claim(
                name, who.key, who, route=route, source=who.source
            )
        except Refused as exc:
            return self._refuse_register(who, exc.reason, name)
        self.log.emit(
            "register", name=name, conn=who.id, key=who.key, stable=True, taken_over=taken_over
        )
        return _Registration(self, who, rendezvous)

    def _refuse_register(self, who: RelayConnection, why: str, name: str | None = None) -> bool:
        if self._refused(who):
            self.log.emit("register_refused", conn=who.id, key=who.key, asked=name, why=why)
            if who.conn is not None:
                # The refusal itself carries no text: the reason goes just before it, in order.
                who.conn.send_debug(why)
        return False

    def _refused(self, who: RelayConnection) -> bool:
        """Count a refusal; past MAX_REFUSED on one connection, hang up. Whether to say it.

        A client that asks again and again for what it is refused would otherwise
        make a log line (and an answer) of every request.
        """
        who.refused += 1
        if who.refused <= MAX_REFUSED:
            return True
        if who.refused == MAX_REFUSED + 1 and who.conn is not None:
            self.log.emit("disconnect_refused", conn=who.id, key=who.key, refused=MAX_REFUSED)
            who.conn.disconnect(
                asyncssh.DISC_BY_APPLICATION,
                f"over {MAX_REFUSED} refused requests on one connection",
            )
        return False

    def cancel(self, who: RelayConnection, name: str, route: str) -> None:
        rendezvous = self.table.get(name)
        if rendezvous is None or rendezvous.route != route:
            return  # a forward the agent replaced since
        if self.table.cancel(who, name) is not None:
            self.log.emit("cancel", name=name, conn=who.id)

    def join(self, who: RelayConnection, dest_path: str) -> Any:
        name = clip(name_of_path(dest_path))
        if not who.technician:
            if self._refused(who):
                self.log.emit("lookup", conn=who.id, name=name, ok=False, why="not a technician")
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, NOT_A_TECHNICIAN
            )
        if not self.limit.allow(who.source):
            if self._refused(who):
                self.log.emit("lookup", conn=who.id, name=name, ok=False, why="rate limited")
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                "too many lookups from your address; wait a little and try again",
            )
        try:
            rendezvous = self.table.lookup(name)
        except Refused as exc:
            why = exc.reason
            if is_stable_name(name) and self.table.get(name) is None:
                why = f"no agent called {name} is connected to this relay"
            if self._refused(who):
                self.log.emit("lookup", conn=who.id, name=name, ok=False, why=why)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, why) from None
        assert who.conn is not None
        chan = who.conn.create_unix_channel(window=WINDOW, max_pktsize=MAX_PACKET)
        return chan, self._splice(who, rendezvous)

    async def _splice(self, who: RelayConnection, rendezvous: Rendezvous) -> Splice:
        agent = rendezvous.holder
        assert isinstance(agent, RelayConnection) and agent.conn is not None
        name = rendezvous.name
        technician_side = Splice(self, name, "up")
        agent_side = Splice(self, name, "down")
        agent_side.pair(technician_side)
        try:
            await agent.conn.create_connection(
                lambda: agent_side,
                rendezvous.route,
                rendezvous.port,
                who.address,
                who.port,
                window=WINDOW,
                max_pktsize=MAX_PACKET,
            )
        except (asyncssh.Error, OSError) as exc:
            self.log.emit("lookup", conn=who.id, name=name, ok=False, why=clip(str(exc)))
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, "the customer's agent did not answer"
            ) from None
        self.sessions += 1
        self.log.emit("join", name=name, conn=who.id, agent=agent.id, key=who.key)
        return technician_side

    def parted(self, name: str, side: Splice, other: Splice) -> None:
        up, down = (side, other) if side._direction == "up" else (other, side)
        self.sessions -= 1
        self.log.emit("part", name=name, bytes_up=up.received, bytes_down=down.received)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.sweep()

    def sweep(self) -> None:
        now = time.monotonic()
        for rendezvous in self.table:
            if rendezvous.name not in self._expired and now >= rendezvous.deadline:
                self._expired.add(rendezvous.name)
                self.log.emit("expire", name=rendezvous.name)
        for rendezvous in self.table.sweep():
            self._expired.discard(rendezvous.name)
            self.log.emit("forget", name=rendezvous.name)
        if now - self._trimmed >= TRIM_INTERVAL:
            self._trimmed = now
            release_memory()  # the buffers of sessions that ended, kept by tune_allocator

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self._connections),
            "rendezvous": self.table.counts(),
            "sessions": self.sessions,
        }


__all__ = [
    "Relay",
    "RelayConnection",
    "RelayOptions",
    "Splice",
    "Tap",
    "load_host_key",
    "read_agents",
    "read_technicians",
]
