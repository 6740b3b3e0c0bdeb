"""Reaching an agent through a relay: ``toolkit relay`` or any stock OpenSSH server.

Both sides dial the relay as ordinary SSH clients: the relay's host key is
checked against known_hosts (never accepted silently; :func:`check_host_key`
looks before anything else happens, so that the CLI can ask as ssh does),
``~/.ssh/config`` applies. The technician logs in with the toolkit identity
(which a ``toolkit relay --technicians`` list names), then, if an OpenSSH
relay does not take it, with the user's own keys and ssh-agent's; the agent
offers the user's keys and ssh-agent's, then a throwaway key (enough for
``toolkit relay``; an OpenSSH relay wants a key it lists). Then:

- the agent (:class:`AgentRendezvous`) registers a rendezvous, a forward back
  to itself, and serves its consent-gated SSH server over each forwarded
  channel (asyncssh's ``create_server(..., tunnel=...)``). Until a session
  starts it keeps the rendezvous through drops, reconnecting with backoff
  under the same name, so the code it shows keeps working. A code is shown
  only once the relay holds its name for this agent (:meth:`AgentRendezvous.show_when_held`);
- the technician (:func:`connect_through`) opens a ``direct-streamlocal``
  channel to the rendezvous and runs the same end-to-end SSH connection and
  consent handshake inside it (``connect(..., tunnel=...)``).

The relay carries the inner connection's ciphertext only. docs/relay.md
describes the protocol and the OpenSSH configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from toolkit.consent._code import NAMEPLATE_WIDTHS, nameplate_of, new_code
from toolkit.errors import TransportError, UsageError
from toolkit.identity.keys import blob_of, fingerprint, is_certificate, key_type, load_public
from toolkit.identity.signer import Signer
from toolkit.relay._wire import (
    DEFAULT_SOCKET_DIR,
    MAX_PACKET,
    NAMED_PORT,
    NOT_A_TECHNICIAN,
    WINDOW,
    is_stable_name,
    is_toolkit_relay,
    register_host,
    register_name_host,
    socket_path,
)
from toolkit.secrets import Secret
from toolkit.text import printable
from toolkit.transport.batching import DirectTCP, attach
from toolkit.transport.known_hosts import (
    HostKeyCheck,
    HostKeyStatus,
    UnreadableKnownHosts,
    classify,
    known_hosts_files,
    preferred_algorithms,
)
from toolkit.transport.tuning import CIPHERS

CONNECT_TIMEOUT = 20.0
#: Seconds between reconnect attempts: doubling from the first to the last, with jitter.
BACKOFF = (0.5, 30.0)
#: The relay keeps a rendezvous this much longer than the code, so that a renewal for
#: the next code (made within a second of the old one's end) always arrives in time;
#: the next code made within this long after a registration is covered by it.
TTL_GRACE = 5.0
#: How long the relay may take to answer a new code's renewal before the customer is told.
RENEW_TIMEOUT = 10.0
#: Names an agent tries at each width on an OpenSSH relay before it widens.
PROBES_PER_WIDTH = 8
PROBE_TIMEOUT = 5.0
_PROBE = b"toolkit-probe "
_HOST = re.compile(r"^[A-Za-z0-9._-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$")

Say = Callable[[str], None]


@dataclass(frozen=True)
class RelayAddress:
    """``[USER@]HOST[:PORT]``; what is left out comes from ~/.ssh/config, then defaults."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> RelayAddress:
        user, at, rest = text.rpartition("@")
        if at and not user:
            raise UsageError(f"--relay {text!r}: the user before @ is empty.")
        host, port_text = rest, ""
        if rest.startswith("["):
            end = rest.find("]")
            host, port_text = rest[: end + 1], rest[end + 1 :].removeprefix(":")
        elif rest.count(":") == 1:
            host, port_text = rest.split(":")
        if not _HOST.match(host) or (port_text and not port_text.isdigit()):
            raise UsageError(
                f"--relay {text!r} is not [USER@]HOST[:PORT].",
                hint="For example: --relay support@relay.example.com:2222",
            )
        port = int(port_text) if port_text else None
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"--relay {text!r}: the port must be 1-65535.")
        return cls(host.strip("[]"), user or None, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.user}@{host}" if self.user else host
        return f"{text}:{self.port}" if self.port else text


@dataclass(frozen=True)
class RelayRoute:
    """Which relay, and where rendezvous sockets live if it is OpenSSH."""

    address: RelayAddress
    socket_dir: str = DEFAULT_SOCKET_DIR
    connect_timeout: float = CONNECT_TIMEOUT
    #: A service's stable name at the relay (toolkit serve --name): the technician
    #: reaches it by this, not by a code's first group.
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.socket_dir.startswith("/"):
            raise UsageError(f"--relay-dir {self.socket_dir!r} must be an absolute path.")
        if self.name is not None and not is_stable_name(self.name):
            raise UsageError(
                f"--name '{printable(self.name, 80)}' is not an agent name: 1 to 64 letters, "
                "digits, '.', '_' or '-', not digits only."
            )


class _IdentityKey(asyncssh.SSHKeyPair):
    """The technician's toolkit identity as a key asyncssh logs in with.

    Whatever holds it (the keyring, an encrypted file, ``--key``, ssh-agent)
    signs through the identity's :class:`~toolkit.identity.signer.Signer`; a
    certificate's bare key is offered (``toolkit relay --technicians`` lists
    plain keys).
    """

    def __init__(self, signer: Signer) -> None:
        blob = signer.public_blob
        if is_certificate(blob):
            blob = blob_of(load_public(blob))
        algorithm = key_type(blob).encode("ascii")
        # The signature algorithm the signer makes: SHA-512 for RSA (toolkit.identity.keys).
        signs = b"rsa-sha2-512" if algorithm == b"ssh-rsa" else algorithm
        super().__init__(algorithm, signs, [signs], [signs], blob, None)
        self.algorithm = signs
        self._signer = signer

    def set_sig_algorithm(self, sig_algorithm: bytes) -> None:
        return None  # it makes one kind of signature only

    def sign(self, data: bytes) -> bytes:
        return self._signer.sign_data(data)

    async def sign_async(self, data: bytes) -> bytes:
        # ssh-agent answers over a blocking socket: not on the event loop.
        return await asyncio.to_thread(self._signer.sign_data, data)


class _RelayLogin(asyncssh.SSHClient):
    """After the keys offered (the technician's identity, or the user's keys and
    ssh-agent's): one throwaway key, if given (enough for an agent at toolkit relay).

    It also keeps the relay's last debug message: ``toolkit relay`` sends why it
    refuses a registration that way, just before the refusal (which has no text).
    """

    def __init__(self, spare: asyncssh.SSHKey | None) -> None:
        self._spare = spare
        self.said: str | None = None
        #: The fingerprint of the technician's identity, when that is the key offered.
        self.identity: str | None = None

    def debug_msg_received(self, msg: str, lang: str, always_display: bool) -> None:
        self.said = msg

    def public_key_auth_requested(self) -> asyncssh.SSHKey | None:
        spare, self._spare = self._spare, None
        return spare

    def password_auth_requested(self) -> None:
        return None

    def kbdint_auth_requested(self) -> None:
        return None


def _options(address: RelayAddress) -> asyncssh.SSHClientConnectionOptions:
    """The options ~/.ssh/config gives this address (its HostName, Port, known_hosts...)."""
    config = Path("~/.ssh/config").expanduser()
    return asyncssh.SSHClientConnectionOptions(
        host=address.host,
        port=address.port or (),
        username=address.user or (),
        client_keys=None,
        config=[str(config)] if config.is_file() else [],
    )


def _plain_tcp(options: asyncssh.SSHClientConnectionOptions) -> bool:
    """Whether toolkit's own TCP (batched writes, DirectTCP) may reach this relay.

    Only where ~/.ssh/config asks for nothing that asyncssh applies on its own
    connect path alone: a ProxyJump or ProxyCommand, a BindAddress or
    AddressFamily, host name canonicalisation, or a ``Match final`` block (read
    again after the first pass, and able to add any of these). Otherwise
    asyncssh connects as ssh would.
    """
    return not (
        options.tunnel
        or options.proxy_command
        or options.local_addr
        or options.family != socket.AF_UNSPEC
        or options.canonicalize_hostname
        or options.config.has_match_final()
    )


def _loadable_keys() -> list[asyncssh.SSHKey]:
    """The default ~/.ssh keys that load without a passphrase, skipping any that do not."""
    keys = []
    for name in ("id_ed25519_sk", "id_ecdsa_sk", "id_ed448", "id_ed25519", "id_ecdsa", "id_rsa"):
        path = Path("~/.ssh").expanduser() / name
        if path.is_file():
            with contextlib.suppress(Exception):
                keys.append(asyncssh.read_private_key(str(path)))
    return keys


def _known_hosts(options: asyncssh.SSHClientConnectionOptions) -> Any:
    """The known_hosts to check against: ~/.ssh/config's, never "none" (no check at all)."""
    if options.known_hosts is not None:
        return options.known_hosts
    default = Path("~/.ssh/known_hosts").expanduser()
    return str(default) if default.is_file() else b""


async def dial(
    route: RelayRoute, spare: asyncssh.SSHKey | None = None, *, login: Signer | None = None
) -> asyncssh.SSHClientConnection:
    """An SSH connection to the relay; TransportError (exit 4) saying what to do if not.

    With ``login`` (the technician's identity) that key is offered first and
    alone: ``toolkit relay`` takes any key and admits to rendezvous the keys
    its --technicians file lists. An OpenSSH relay that refuses it is dialled
    again with the user's keys and ssh-agent's, as ssh would offer them.
    """
    if login is not None:
        try:
            return await _dial(route, None, _IdentityKey(login))
        except _KeyRefused:
            pass
    return await _dial(route, spare or asyncssh.generate_private_key("ssh-ed25519"))


class _KeyRefused(Exception):
    """The relay took none of the keys offered (then :func:`dial` may offer others)."""


async def _dial(
    route: RelayRoute, spare: asyncssh.SSHKey | None, identity: _IdentityKey | None = None
) -> asyncssh.SSHClientConnection:
    address = route.address
    configured = _options(address)
    login = _RelayLogin(spare)
    keys: dict[str, Any] = {}
    if identity is not None:
        keys = {"client_keys": [identity], "agent_path": None}
        login.identity = fingerprint(identity.public_data)
    options: dict[str, Any] = {
        "port": address.port or (),
        "username": address.user or (),
        "known_hosts": _known_hosts(configured),
        "tunnel": DirectTCP() if _plain_tcp(configured) else (),
        "client_factory": lambda: login,
        "preferred_auth": "publickey",
        # AES-GCM first, as on the inner connection: every byte is encrypted twice.
        "encryption_algs": CIPHERS,
        "ignore_encrypted": True,
        "password_auth": False,
        "kbdint_auth": False,
        "gss_host": None,
        "keepalive_interval": 15,
        "keepalive_count_max": 3,
        "encoding": None,
    }
    try:
        if identity is not None:
            return await asyncio.wait_for(
                asyncssh.connect(address.host, **keys, **options), route.connect_timeout
            )
        try:
            return await asyncio.wait_for(
                asyncssh.connect(address.host, **options), route.connect_timeout
            )
        except asyncssh.KeyImportError:
            # A file in ~/.ssh that does not load as a key: use the others rather than
            # fail on it, as ssh does.
            return await asyncio.wait_for(
                asyncssh.connect(address.host, client_keys=_loadable_keys() or None, **options),
                route.connect_timeout,
            )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise await _unknown_host_key(route, exc) from None
    except asyncssh.KeyExchangeFailed as exc:
        if "host key" not in str(exc.reason):
            raise _unreachable(address, exc) from None
        # known_hosts trusts only a host CA for it, and the relay has no certificate.
        raise await _unknown_host_key(route, exc) from None
    except asyncssh.PermissionDenied:
        if identity is not None:
            raise _KeyRefused() from None
        raise TransportError(
            f"The relay {address} refused every key we offered.",
            hint="An OpenSSH relay needs your public key in its relay user's authorized_keys "
            "(docs/relay.md); load your key into ssh-agent or name it with IdentityFile "
            "in ~/.ssh/config.",
        ) from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise _unreachable(address, exc) from None


def _unreachable(address: RelayAddress, exc: BaseException) -> TransportError:
    # A reason the relay (or whoever answers) sent: shown, never obeyed by the terminal.
    detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
    return TransportError(
        f"Cannot reach the relay {address}: {printable(detail or type(exc).__name__)}.",
        hint="Check the relay's address, and that it is running and reachable from here.",
    )


async def check_host_key(route: RelayRoute) -> HostKeyCheck:
    """The relay's host key, and whether known_hosts knows it; TransportError if unreachable.

    Only the key exchange runs, as for ssh-keyscan: nothing is sent to log in.
    ~/.ssh/config applies (HostName, Port, HostKeyAlias, UserKnownHostsFile,
    ProxyJump...). Where known_hosts lists keys for the relay, the relay is asked
    for one of their kinds, so a relay with several host keys offers the one known.
    """
    address = route.address
    configured = _options(address)
    host = str(configured.host_key_alias or configured.host)
    port = int(configured.port)
    files = known_hosts_files(configured.known_hosts)
    try:
        algorithms = preferred_algorithms(files, host, port)
    except UnreadableKnownHosts as exc:
        raise _unreadable(exc) from None
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(
                address.host,
                address.port or (),
                options=configured,  # ~/.ssh/config's, as read once; no client keys loaded
                config=None,
                server_host_key_algs=algorithms or (),
            ),
            route.connect_timeout,
        )
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise _unreachable(address, exc) from None
    if key is None:
        raise TransportError(f"The relay {address} offered no host key.")
    try:
        return classify(key, files, host, port)
    except UnreadableKnownHosts as exc:
        raise _unreadable(exc) from None


def _unreadable(exc: UnreadableKnownHosts) -> TransportError:
    where = ", ".join(printable(str(f), 200) for f in exc.files)
    return TransportError(
        f"Cannot check the relay's host key: {where} holds a line that cannot be read "
        f"({printable(exc.reason, 200)}). Nothing was sent to the relay.",
        hint="Fix or remove that line (ssh-keygen -F HOST finds a host's lines).",
    )


def host_key_refused(
    check: HostKeyCheck, address: RelayAddress, *, declined: bool = False
) -> TransportError:
    """Why nothing goes to a relay whose key is not the one known: exit 4, and what to do.

    ``declined``: the person answered no to an unknown key.
    """
    offered = f"{check.kind} key {check.fingerprint}"
    if check.status is HostKeyStatus.REVOKED:
        return TransportError(
            f"The relay {address} offered the host key {check.fingerprint}, which your "
            f"known_hosts ({check.file}) marks as revoked. Nothing was sent to it.",
            hint="Ask the relay's operator which key it should have.",
        )
    if check.status is HostKeyStatus.CHANGED:
        listed = ", ".join(check.listed)
        return TransportError(
            f"The relay {address}'s host key has changed: it offered the {offered}, but "
            f"your known_hosts ({check.file}) lists {listed} for {check.pattern}. Nothing "
            "was sent to it; someone may be between you and the relay.",
            hint="Ask the relay's operator whether they replaced its key. Only if they "
            f"confirm the new fingerprint, remove the old one with: ssh-keygen -R "
            f"'{check.pattern}' (then run this command again and compare).",
        )
    if declined:
        return TransportError(
            f"You did not accept the relay {address}'s host key ({check.fingerprint}); "
            "nothing was sent to it.",
            hint="Compare it with the fingerprint the relay's operator publishes, then run "
            "the command again and answer yes.",
        )
    return TransportError(
        f"The relay {address} is not in your known_hosts: it offered the {offered}. "
        "Nothing was sent to it.",
        hint="Compare that fingerprint with the one the relay's operator publishes; if it "
        f"matches, run the command in a terminal and answer yes, or add it with: "
        f"{check.add_command()}",
    )


async def _unknown_host_key(route: RelayRoute, refused: asyncssh.Error) -> TransportError:
    """After asyncssh refused the relay's key: which case it is, in one sentence."""
    # asyncssh's own words (a host CA that did not certify the key, say), shown, not obeyed.
    reason = printable(str(refused.reason or refused), 200).rstrip(".")
    try:
        check = await check_host_key(route)
    except TransportError as exc:
        return TransportError(
            f"The relay {route.address}'s host key could not be verified against your "
            f"known_hosts ({reason}); nothing was sent to it.",
            hint=f"Checking it again failed too: {exc.message}",
        )
    if check.status is not HostKeyStatus.KNOWN:
        return host_key_refused(check, route.address)
    return TransportError(
        f"The relay {route.address}'s host key ({check.fingerprint}) was refused "
        f"({reason}), though your known_hosts ({check.file}) accepts it for "
        f"{check.pattern}; nothing was sent to it.",
        hint="A @cert-authority or @revoked line may apply to it (ssh-keygen -F "
        f"'{check.pattern}' lists the lines for it); ask the relay's operator.",
    )


class _Hop(asyncssh.SSHTCPSession[bytes]):
    """A relay channel carrying an inner SSH connection; the relay's loss is named as such.

    With ``probes`` (an agent on an OpenSSH relay), the first line may instead be a
    ``toolkit-probe NONCE`` that an agent sends to find out who holds a name: it is
    answered by ``probes`` and the channel closed, before any SSH starts.
    """

    def __init__(
        self,
        make: Callable[[], Any],
        relay: str,
        peername: tuple[str, int] | None = None,
        probes: Callable[[bytes], None] | None = None,
    ) -> None:
        self._make = make
        self._relay = relay
        self._peername = peername
        self._probes = probes
        self._chan: Any = None
        self._head = b""
        self._incoming: list[bytes] = []
        self.inner: Any = None if probes is not None else make()

    def connection_made(self, chan: Any) -> None:
        self._chan = chan
        if self._peername is not None:
            chan.set_extra_info(peername=self._peername)
        if self.inner is not None:
            attach(self.inner, chan)

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self.inner is not None:
            self._deliver(data)
            return
        self._head += data
        line, newline, _ = self._head.partition(b"\n")
        if not newline and len(self._head) < 256:
            return
        if line.startswith(_PROBE):
            assert self._probes is not None
            self._probes(line[len(_PROBE) :])
            self._chan.close()
            return
        self.inner = self._make()
        attach(self.inner, self._chan)
        head, self._head = self._head, b""
        self._deliver(head)

    def _deliver(self, data: bytes) -> None:
        # The outer packets of one read of the relay's socket reach the inner
        # connection joined, once per loop turn: an OpenSSH relay's 32 KiB packets
        # were otherwise each a pass of asyncssh's receive loop, which copies its
        # growing buffer, and a reset of its keepalive timer.
        self._incoming.append(data)
        if len(self._incoming) == 1:
            asyncio.get_running_loop().call_soon(self._hand_over)

    def _hand_over(self) -> None:
        parts, self._incoming = self._incoming, []
        if parts and self.inner is not None:
            self.inner.data_received(parts[0] if len(parts) == 1 else b"".join(parts))

    def eof_received(self) -> bool:
        if self.inner is None:
            return False
        self._hand_over()
        return bool(self.inner.eof_received())

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is None:
            return
        self._hand_over()
        # Whatever asyncssh says of the hop, the inner connection hears it was the relay:
        # lost (the relay or the network failed) or closed (by the relay, whose other
        # side went away). An inner connection that ended first ignores this.
        if exc is not None:
            why = f"the relay connection ({self._relay}) was lost"
        else:
            why = f"the relay ({self._relay}) closed the connection"
        self.inner.connection_lost(asyncssh.ConnectionLost(why))


# -- the technician's side --------------------------------------------------------------


class _Channel:
    """asyncssh's tunnel protocol: the technician's connection runs in a relay channel."""

    def __init__(
        self,
        relay: asyncssh.SSHClientConnection,
        route: RelayRoute,
        name: str,
        who: str | None = None,
    ):
        self._relay = relay
        self._route = route
        self._name = name
        self._who = who  # the fingerprint the technician logged in with, if the identity

    async def create_connection(
        self, session_factory: Callable[[], Any], host: str, port: int
    ) -> tuple[Any, Any]:
        path = socket_path(self._route.socket_dir, self._name)
        hop = _Hop(session_factory, str(self._route.address))
        try:
            factory: Any = lambda: hop  # noqa: E731 (asyncssh's session type, not ours)
            chan, _ = await self._relay.create_unix_connection(
                factory, path, window=WINDOW, max_pktsize=MAX_PACKET
            )
        except asyncssh.ChannelOpenError as exc:
            raise self._refused(exc) from None
        return chan, hop.inner

    def _refused(self, exc: asyncssh.ChannelOpenError) -> TransportError:
        """Why the relay gave no channel to the rendezvous: the relay's refusal or the name."""
        relay = self._route.address
        reason = printable(exc.reason or "refused", 200)
        if exc.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED and exc.reason == NOT_A_TECHNICIAN:
            key = f" ({self._who})" if self._who else ""
            return TransportError(
                f"The relay {relay} refused you: {NOT_A_TECHNICIAN}, and your toolkit "
                f"key{key} is not on its list.",
                hint="Send the relay's operator your public key, to add to its --technicians "
                "file: toolkit keys allowed-signers prints it (with the same --key or --agent).",
            )
        if exc.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
            return TransportError(
                f"The relay {relay} refused to open rendezvous {self._name}: {reason}.",
                hint="Wait a little and try again; if it keeps refusing, ask the relay's operator.",
            )
        if self._route.name is not None:
            return TransportError(
                f"The relay {relay} cannot reach the agent {self._name}: {reason}.",
                hint="Check the name, and that its toolkit serve runs and is registered at "
                "this relay (its log says so).",
            )
        return TransportError(
            f"The relay {relay} cannot reach rendezvous {self._name}: {reason}.",
            hint="Check the code's first group with the customer: their toolkit share may "
            "have stopped, or shows a new code now.",
        )


async def connect_through(route: RelayRoute, ask: Any) -> tuple[asyncssh.SSHClientConnection, Any]:
    """Connect to the agent behind ``route.name``, else rendezvous ``nameplate_of(ask.code)``,
    and pass consent."""
    from toolkit.transport.ssh import connect

    name = route.name or nameplate_of(ask.code)
    signer = ask.identity.signer
    relay = await dial(route, login=signer)
    owner = relay.get_owner()
    who = owner.identity if isinstance(owner, _RelayLogin) else None
    try:
        conn, consent = await connect(
            str(route.address),
            int(name) if route.name is None else NAMED_PORT,
            ask,
            tunnel=_Channel(relay, route, name, who),
        )
    except BaseException:
        relay.close()
        raise
    conn.set_tunnel(relay)  # closing the session's connection closes the relay's
    return conn, consent


# -- the agent's side -------------------------------------------------------------------


class _Listener(asyncssh.SSHListener):
    """What the agent's SSH server listens on: the rendezvous, across reconnects."""

    def __init__(self, rendezvous: AgentRendezvous) -> None:
        super().__init__()
        self._rendezvous = rendezvous

    def get_port(self) -> int:
        name = self._rendezvous.name
        return int(name) if name.isdigit() else NAMED_PORT

    def close(self) -> None:
        self._rendezvous.close()

    async def wait_closed(self) -> None:
        await self._rendezvous.wait_closed()


class AgentRendezvous:
    """The agent's end of a relay: dial out, hold a rendezvous, keep it until a session starts.

    Give it to ``Agent.start(tunnel=...)``; its :meth:`new_code` makes the codes
    (the name, then 6 random digits), and :meth:`show_when_held` says when one
    may be shown: once the relay holds its name for this agent (a new code
    renews the name; a name the relay gave away meanwhile is replaced by a
    fresh one). ``in_session`` says whether a session runs (then a drop is not
    repaired: the session ends); ``renamed`` is called when a reconnect or a
    renewal could not keep the name, so that a code with the new name can be
    made (the code waiting to be shown, which has the old one, never is).

    With ``stable`` (toolkit serve --relay --name), the agent logs in to the
    relay with ``login`` (its host key) and registers under that name, which
    ``toolkit relay --agents`` gives to that key only; it keeps it across
    reconnects, forever, and its codes (if any) are not tied to it.
    """

    def __init__(
        self,
        route: RelayRoute,
        *,
        ttl: float,
        say: Say,
        in_session: Callable[[], bool] = lambda: False,
        renamed: Callable[[], None] | None = None,
        backoff: tuple[float, float] = BACKOFF,
        stable: str | None = None,
        login: Signer | None = None,
    ) -> None:
        if stable is not None and not is_stable_name(stable):
            raise UsageError(f"'{printable(stable, 80)}' is not an agent name.")
        self.route = route
        self.stable = stable
        self._login_key = login
        self.ttl = ttl
        self.say = say
        self.in_session = in_session
        self.renamed = renamed
        self.backoff = backoff
        self.name = stable or ""
        self.toolkit_relay = False
        self.reconnects = 0
        self._spare = asyncssh.generate_private_key("ssh-ed25519")
        self._conn: asyncssh.SSHClientConnection | None = None
        self._factory: Callable[[str, int], Any] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._closed = asyncio.Event()
        # The next code, if made before this (loop time), is covered by the last registration.
        self._covered_until = 0.0
        self._made_at = 0.0  # when the last code was made
        self._held = False  # whether the relay holds the last code's name for us
        self._lost = False  # the relay refused our own name back: ask for a fresh one
        self._waiting: Callable[[], None] | None = None  # shows the last code, once held
        self._renewing: asyncio.Task[None] | None = None
        self._probes: dict[bytes, asyncio.Future[None]] = {}

    @property
    def address(self) -> tuple[str, int]:
        return (self.route.address.host, self.route.address.port or 22)

    async def open(self) -> None:
        """Dial the relay (raises TransportError); the rendezvous comes with create_server."""
        self._conn = await self._dial()
        self.toolkit_relay = is_toolkit_relay(self._conn.get_extra_info("server_version"))

    async def _dial(self) -> asyncssh.SSHClientConnection:
        # A stable name is given to a key: the agent logs in with its host key first.
        return await dial(self.route, self._spare, login=self._login_key)

    # -- asyncssh's tunnel protocol (create_server(..., tunnel=self)) -----------------

    async def create_server(
        self, session_factory: Callable[[str, int], Any], host: str, port: int
    ) -> asyncssh.SSHListener:
        if self._conn is None:
            await self.open()
        self._factory = session_factory
        sent = self._now()
        self.name = await self._register()
        self._covered_until = sent + TTL_GRACE
        self._keeper = asyncio.get_running_loop().create_task(self._keep())
        return _Listener(self)

    # -- codes -------------------------------------------------------------------------

    def new_code(self) -> Secret:
        """A code for the agent's CodeBook: this rendezvous's name and 6 secret digits.

        Each new code renews the rendezvous at the relay for the code's lifetime
        (unless a registration just made covers it); :meth:`show_when_held` says
        when the code may be shown. Under a stable name: 9 random digits, shown at once.
        """
        if self.stable is not None:
            self._held = True
            return new_code()
        self._made_at = self._now()
        self._waiting = None  # a code still waiting is replaced: it is never shown
        if self._made_at <= self._covered_until:
            self._covered_until = 0.0  # once: a later code renews (a relay may cap the time)
            self._held = True
        elif self._conn is None:
            self._held = False  # reconnecting: the registration after it settles the name
        elif not self.toolkit_relay:
            self._held = True  # an OpenSSH relay keeps our socket as long as we are connected
        else:
            self._held = False
            if self._renewing is None or self._renewing.done():
                self._renewing = self._spawn(self._renew())
        return new_code(self.name)

    def show_when_held(self, code: Secret, show: Callable[[], None]) -> None:
        """Call ``show`` once the relay holds ``code``'s name for this agent: now if it does.

        ``code`` is the one :meth:`new_code` made last. If its name cannot be
        had, ``show`` is never called: a new name means a new code (``renamed``),
        and with no name at all the customer is told so, in one sentence.
        """
        if self.stable is not None:
            show()
            return
        if nameplate_of(code) != self.name:
            return
        if self._held:
            show()
            return
        self._waiting = show
        if self._conn is None:
            self.say(
                f"the connection to the relay {self.route.address} is down, "
                "so the new code will be shown once it is back"
            )

    async def _renew(self) -> None:
        """Renew the name for the last code (again if a later code came meanwhile)."""
        while not self._held and not self._closing:
            conn, sent = self._conn, self._now()
            if conn is None:
                return  # reconnecting: _reconnect settles it
            try:
                name = await asyncio.wait_for(self._claim_toolkit(self.name), RENEW_TIMEOUT)
            except TimeoutError:
                if conn is self._conn and not conn.is_closed():
                    self._no_code(f"The relay {self.route.address} did not answer")
                return
            except (asyncssh.Error, OSError):
                name = None
            if conn is not self._conn or conn.is_closed():
                return  # the connection dropped: _reconnect settles it
            if name is None:
                self._no_code(self._refusal("gave no rendezvous for the new code"))
                return
            if not self._registered(name, sent):
                return

    def _no_code(self, why: str) -> None:
        """No name for the last code: it is never shown, and the customer is told why."""
        self._waiting = None
        self.say(f"{why}, so there is no code to read out; ask for a new code again later")

    def _registered(self, name: str, sent: float) -> bool:
        """The relay holds ``name`` for us since ``sent``; False when it is a new name."""
        self._covered_until = sent + TTL_GRACE
        self._lost = False
        if name != self.name:
            self.name, self._held, self._waiting = name, False, None
            if self.renamed is not None:
                self.renamed()  # its new code is made now, within the cover
            return False
        if self._made_at <= self._covered_until:
            self._held = True
            show, self._waiting = self._waiting, None
            if show is not None:
                self._covered_until = 0.0  # the cover was this code's
                show()
        return True

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- registration ------------------------------------------------------------------

    async def _register(self, keep: str | None = None) -> str:
        """Register ``keep`` if it is still ours, else a new name; which, or TransportError."""
        if self.stable is not None:
            return await self._register_stable(self.stable)
        if self.toolkit_relay:
            name = await self._claim_toolkit(keep)
            if name is None:
                raise self._refused()
            return name
        return await self._bind_openssh(keep)

    async def _register_stable(self, name: str) -> str:
        """Register the stable ``name`` (toolkit relay only); it, or TransportError saying why."""
        if not self.toolkit_relay:
            raise TransportError(
                f"The relay {self.route.address} is not toolkit relay: only toolkit relay "
                "keeps a service's name for its key.",
                hint="Run toolkit relay with --agents listing this service's host key.",
            )
        assert self._conn is not None and self._factory is not None
        factory = self._factory
        relay = str(self.route.address)
        login = self._login()
        if login is not None:
            login.said = None

        def forwarded(orig_host: str, orig_port: int) -> _Hop:
            return _Hop(lambda: factory(orig_host, orig_port), relay, (orig_host, orig_port))

        try:
            await self._conn.create_server(
                forwarded, register_name_host(name), 0, window=WINDOW, max_pktsize=MAX_PACKET
            )
        except asyncssh.ChannelListenError:
            raise TransportError(
                f"{self._refusal(f'refused the name {name}')}.",
                hint="The relay's operator lists each service's host key under its name in "
                "toolkit relay --agents (toolkit serve --show-host-key prints it).",
            ) from None
        return name

    async def _claim_toolkit(self, keep: str | None) -> str | None:
        """``keep`` back (unless the relay refused it before), else a new name; None if none."""
        if keep and not self._lost:
            name = await self._register_toolkit(keep)
            if name is not None:
                return name
            self._lost = True  # given away, or refused: a fresh name, and not this one again
        return await self._register_toolkit(None)

    def _login(self) -> _RelayLogin | None:
        owner = self._conn.get_owner() if self._conn is not None else None
        return owner if isinstance(owner, _RelayLogin) else None

    def _refused(self) -> TransportError:
        """Why the relay gave no rendezvous, in its words (made printable), if it said."""
        hint = "Try again in a few minutes; if it keeps refusing, ask the relay's operator."
        if self._said() is not None:
            return TransportError(f"{self._refusal('refused a rendezvous')}.", hint=hint)
        return TransportError(f"The relay {self.route.address} gave no rendezvous.", hint=hint)

    def _said(self) -> str | None:
        login = self._login()
        return login.said if login is not None else None

    def _refusal(self, what: str) -> str:
        """``The relay HOST what: its reason`` (printable), or without a reason if it gave none."""
        said = self._said()
        reason = f": {printable(said, 200)}" if said else ""
        return f"The relay {self.route.address} {what}{reason}"

    async def _register_toolkit(self, name: str | None) -> str | None:
        assert self._conn is not None and self._factory is not None
        factory = self._factory
        relay = str(self.route.address)
        login = self._login()
        if login is not None:
            login.said = None  # what it says from now on is about this request

        def forwarded(orig_host: str, orig_port: int) -> _Hop:
            return _Hop(lambda: factory(orig_host, orig_port), relay, (orig_host, orig_port))

        try:
            listener = await self._conn.create_server(
                forwarded,
                register_host(self.ttl + TTL_GRACE),
                int(name) if name else 0,
                window=WINDOW,
                max_pktsize=MAX_PACKET,
            )
        except asyncssh.ChannelListenError:
            return None
        return str(listener.get_port())

    async def _bind_openssh(self, keep: str | None) -> str:
        """Pick a name nobody listens on, bind it, and check it is really ours."""
        candidates: list[str] = [keep] if keep else []
        for width in NAMEPLATE_WIDTHS:
            low = 10 ** (width - 1)
            candidates += [str(low + secrets.randbelow(9 * low)) for _ in range(PROBES_PER_WIDTH)]
        for name in candidates:
            path = socket_path(self.route.socket_dir, name)
            if await self._probe(path):
                continue  # someone listens there
            try:
                await self._conn_checked().create_unix_server(
                    self._unix_factory, path, window=WINDOW, max_pktsize=MAX_PACKET
                )
            except asyncssh.ChannelListenError:
                raise TransportError(
                    f"The relay {self.route.address} refused to forward {path} back to us.",
                    hint="The relay needs AllowStreamLocalForwarding and AllowTcpForwarding, "
                    "and the rendezvous directory must exist and belong to the relay user "
                    "(docs/relay.md); --relay-dir names another directory.",
                ) from None
            if await self._owned(path):
                return name
        raise TransportError(
            f"The relay {self.route.address} has no free rendezvous name.",
            hint="Try again in a minute.",
        )

    def _conn_checked(self) -> asyncssh.SSHClientConnection:
        if self._conn is None:
            raise TransportError(f"The connection to the relay {self.route.address} is gone.")
        return self._conn

    def _unix_factory(self) -> _Hop:
        assert self._factory is not None
        factory = self._factory
        relay = self.route.address
        return _Hop(
            lambda: factory("", 0),
            str(relay),
            (str(relay), relay.port or 22),
            probes=self._probed,
        )

    async def _probe(self, path: str) -> bool:
        """True when something listens at ``path`` on the relay (a live rendezvous)."""
        try:
            chan, _ = await asyncio.wait_for(
                self._conn_checked().create_unix_connection(asyncssh.SSHUNIXSession, path),
                PROBE_TIMEOUT,
            )
        except (asyncssh.ChannelOpenError, TimeoutError):
            return False
        chan.close()
        return True

    async def _owned(self, path: str) -> bool:
        """After binding: a probe with a nonce comes back to us, or another agent took the name."""
        nonce = secrets.token_hex(16).encode()
        arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes[nonce] = arrived
        try:
            chan, _ = await self._conn_checked().create_unix_connection(
                asyncssh.SSHUNIXSession, path
            )
            chan.write(_PROBE + nonce + b"\n")
            await asyncio.wait_for(arrived, PROBE_TIMEOUT)
            chan.close()
            return True
        except (asyncssh.ChannelOpenError, TimeoutError):
            return False
        finally:
            self._probes.pop(nonce, None)

    def _probed(self, nonce: bytes) -> None:
        arrived = self._probes.get(nonce)
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    # -- keeping it ----------------------------------------------------------------------

    async def _keep(self) -> None:
        while not self._closing:
            conn = self._conn
            assert conn is not None
            await conn.wait_closed()
            if self._closing:
                return
            self._conn = None
            if self.in_session():
                self.say(f"the connection to the relay {self.route.address} was lost")
                return
            self.say(f"the connection to the relay {self.route.address} was lost; reconnecting")
            await self._reconnect()

    async def _reconnect(self) -> None:
        delay, longest = self.backoff
        while not self._closing:
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            try:
                self._conn = await self._dial()
                self.toolkit_relay = is_toolkit_relay(self._conn.get_extra_info("server_version"))
                before, sent = self.name, self._now()
                name = await self._register(keep=before)
            except TransportError as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                delay = min(delay * 2, longest)
                self.say(f"{exc.message} Next try in {delay:.0f} s.")
                continue
            self.reconnects += 1
            if name == before:
                # A code asked for meanwhile is shown now; else the one shown keeps working.
                works = "" if self._waiting is not None else "; the same code works"
                self.say(f"reconnected to the relay {self.route.address}{works}")
            else:
                self.say(f"reconnected to the relay; rendezvous {before} was taken meanwhile")
            self._registered(name, sent)
            return

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Give the rendezvous up and hang up (the agent is done)."""
        if self._closing:
            return
        self._closing = True
        if self._keeper is not None and self._keeper is not asyncio.current_task():
            self._keeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._conn is not None:
            self._conn.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.wait_closed()


__all__ = [
    "AgentRendezvous",
    "RelayAddress",
    "RelayRoute",
    "check_host_key",
    "connect_through",
    "dial",
    "host_key_refused",
]
