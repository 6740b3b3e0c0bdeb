"""The technician's SSH connection to an agent, authenticated by the consent handshake.

The agent's host key is not looked up in known_hosts: it is ephemeral, and
the consent handshake binds it instead (both confirmation MACs cover the host
key as each side saw it, so a man-in-the-middle with its own key fails). The
technician's ~/.ssh/config, keys and ssh-agent are not offered to the agent.

With a grant there is no code, so nothing but the host key tells the real
agent from someone in the middle: the technician pins it, and the pin is
checked (``ConsentAsk.host_key_check``) before anything is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncssh

from toolkit.consent import (
    KBDINT_NAME,
    Consent,
    ConsentError,
    Scope,
    TechnicianHandshake,
)
from toolkit.consent._grant import TechnicianGrantHandshake
from toolkit.errors import ConsentRefused, HostKeyRefused, TransportError, UsageError
from toolkit.identity.keys import fingerprint
from toolkit.identity.store import Identity
from toolkit.secrets import Secret
from toolkit.transport.batching import DirectTCP
from toolkit.transport.tuning import CIPHERS, MAX_PACKET, WINDOW

CONNECT_TIMEOUT = 30.0
#: How long the technician waits for the customer's yes (the agent gives up first).
LOGIN_TIMEOUT = 600.0
#: With a grant nobody is asked: a consent takes a second, and an agent that does not
#: answer in this time is unreachable (a fleet must not wait 10 minutes on one host).
GRANT_LOGIN_TIMEOUT = 30.0


if TYPE_CHECKING:
    from toolkit.grants import Grant

#: Checks the agent's host key blob as received; raises HostKeyRefused to refuse it.
HostKeyCheck = Callable[[bytes], None]


def pinned(expected: str) -> HostKeyCheck:
    """A check that takes only the host key whose fingerprint is ``expected`` (SHA256:...)."""

    def check(blob: bytes) -> None:
        seen = fingerprint(blob)
        if seen != expected:
            raise HostKeyRefused(
                f"The agent's host key is {seen}, not the pinned {expected}: "
                "nothing was sent to it."
            )

    return check


@dataclass(frozen=True)
class ConsentAsk:
    """What the technician asks for: who, which ticket, which scopes, with a code or a grant.

    With a ``grant``, ``host_key_check`` is required: it must refuse any host
    key but the agent's, since no code binds the connection to the customer.
    """

    identity: Identity
    ticket: str
    scopes: frozenset[Scope]
    code: Secret | None
    grant: Grant | None = None
    host_key_check: HostKeyCheck | None = None

    def __post_init__(self) -> None:
        if self.grant is not None and self.host_key_check is None:
            raise UsageError(
                "A grant needs the agent's host key pinned.",
                hint="Give the agent's fingerprint with --host-key SHA256:...",
            )
        if self.grant is None and self.code is None:
            raise ValueError("a code or a grant is needed")


class _ConsentClient(asyncssh.SSHClient):
    """Answers the agent's keyboard-interactive rounds with the technician's handshake."""

    def __init__(self, ask: ConsentAsk) -> None:
        self._ask = ask
        self._conn: asyncssh.SSHClientConnection | None = None
        self._handshake: TechnicianHandshake | TechnicianGrantHandshake | None = None
        self.consent: Consent | None = None
        self.error: ConsentError | HostKeyRefused | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self._conn = conn

    def password_auth_requested(self) -> None:
        return None

    def public_key_auth_requested(self) -> None:
        return None

    def kbdint_auth_requested(self) -> str:
        return ""

    def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: Sequence[tuple[str, bool]]
    ) -> list[str] | None:
        if name != KBDINT_NAME or len(prompts) != 1:
            return None  # not a toolkit agent: give up rather than answer anything else
        try:
            if self._handshake is None:
                assert self._conn is not None
                host_key = self._conn.get_server_host_key()
                if host_key is None:
                    return None
                ask = self._ask
                if ask.host_key_check is not None:  # before anything is sent
                    ask.host_key_check(host_key.public_data)
                if ask.grant is not None:
                    self._handshake = TechnicianGrantHandshake(
                        ask.identity.signer,
                        host_key.public_data,
                        ask.grant,
                        name=ask.identity.name,
                        email=ask.identity.email,
                        ticket=ask.ticket,
                        scopes=ask.scopes,
                    )
                else:
                    self._handshake = TechnicianHandshake(
                        ask.identity.signer,
                        host_key.public_data,
                        name=ask.identity.name,
                        email=ask.identity.email,
                        ticket=ask.ticket,
                        scopes=ask.scopes,
                        code=ask.code,
                    )
                return [self._handshake.respond(instructions)]
            self.consent = self._handshake.finish(instructions)
            return [""]
        except (ConsentError, HostKeyRefused) as exc:
            self.error = exc
            return None


async def connect(
    host: str,
    port: int,
    ask: ConsentAsk,
    *,
    tunnel: Any = (),
    connect_timeout: float = CONNECT_TIMEOUT,
) -> tuple[asyncssh.SSHClientConnection, Consent]:
    """Connect to the agent at ``host:port`` and pass consent; returns the connection and it."""
    client = _ConsentClient(ask)
    login_timeout = GRANT_LOGIN_TIMEOUT if ask.grant is not None else LOGIN_TIMEOUT
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                host,
                port,
                # Directly, too, through a tunnel: asyncssh's writes go out batched.
                tunnel=tunnel if tunnel != () else DirectTCP(),
                client_factory=lambda: client,
                config=[],
                known_hosts=None,
                username="toolkit",
                client_keys=None,
                agent_path=None,
                gss_host=None,
                preferred_auth="keyboard-interactive",
                kbdint_auth=True,
                password_auth=False,
                public_key_auth=False,
                encryption_algs=CIPHERS,
                login_timeout=login_timeout,
                keepalive_interval=15,
                keepalive_count_max=4,
                window=WINDOW,
                max_pktsize=MAX_PACKET,
            ),
            connect_timeout + login_timeout,
        )
    except asyncssh.PermissionDenied:
        if client.error is not None:
            raise client.error from None
        raise ConsentRefused(
            "The agent refused the connection without saying why.",
            hint="Check that HOST:PORT is the address toolkit share printed.",
        ) from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        if client.error is not None:
            raise client.error from None
        detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise TransportError(
            f"Cannot reach the agent at {host}:{port}: {detail or type(exc).__name__}.",
            hint="Check the address the agent printed (toolkit share, or toolkit serve), and "
            "that it is still running.",
        ) from None
    if client.consent is None:  # authentication passed without our handshake: not an agent
        conn.close()
        raise ConsentRefused(f"{host}:{port} let us in without the consent handshake.")
    return conn, client.consent


__all__ = ["CIPHERS", "ConsentAsk", "HostKeyCheck", "connect", "pinned"]
