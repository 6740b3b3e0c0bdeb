"""The agent: an SSH server that opens nothing until the customer has consented.

Every SSH connection goes through keyboard-interactive authentication only;
its rounds carry the consent handshake (toolkit.consent, docs/consent.md).
Authentication succeeds only when the code checked out and the customer said
yes, so no channel can open before. After that, one channel is accepted: the
``toolkit-session-v1`` subsystem (no shell, exec, PTY or forwarding), served
by :class:`toolkit.agent.session.AgentSession`; with the shell scope, one more
session channel per ``shell`` request, with a PTY (toolkit.agent.shell). One
agent serves one session, then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncssh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from toolkit import paths
from toolkit.agent.operations import ApproveFix
from toolkit.agent.session import AgentSession, SessionChannel, SessionEnd
from toolkit.agent.shell import ShellChannel
from toolkit.consent import (
    KBDINT_NAME,
    KBDINT_PROMPT,
    AgentHandshake,
    AgentState,
    ApprovalRequest,
    Approver,
    CodeBook,
    CodeState,
    Consent,
    ConsentError,
    Decision,
    OneTimeCode,
    Scope,
    TrustCheck,
    get_decision,
    untrusted,
)
from toolkit.errors import TransportError, UsageError
from toolkit.identity.keys import fingerprint
from toolkit.identity.signer import KeySigner
from toolkit.plugins.catalogue import Catalogue
from toolkit.policy import Policy
from toolkit.transport.tuning import CIPHERS, MAX_PACKET, WINDOW

logger = logging.getLogger(__name__)

APPROVAL_TIMEOUT = 300.0


class Observer(Protocol):
    """What the customer sees: toolkit share prints it, tests collect it."""

    def new_code(self, code: OneTimeCode) -> None:
        """A code to show (the first, or a fresh one after a burn, expiry or refusal)."""

    def say(self, message: str) -> None:
        """One line about what happens: connections, refusals, operations, the end."""

    def shell_size(self, width: int, height: int) -> None:
        """A shell opened, or its window changed size: the mirror's screen size."""

    def shell_output(self, data: bytes) -> None:
        """What the technician's shell printed, to mirror read-only."""

    def shell_ended(self) -> None:
        """The shell closed (its mirror can go)."""


@dataclass
class AgentSettings:
    """What `toolkit share` decides; the defaults need no configuration at all."""

    policy: Policy
    approver: Approver
    approve_fix: ApproveFix
    offered: frozenset[Scope] = frozenset({Scope.DIAGNOSTICS})
    #: Asks the customer about a fix outside the granted scope; None refuses it outright.
    ask_out_of_scope: ApproveFix | None = None
    trust: TrustCheck = untrusted
    ttl: float = 600.0
    approval_timeout: float = APPROVAL_TIMEOUT
    catalogue: Catalogue = field(default_factory=Catalogue)
    transcripts: Path | None = None  # default: <data dir>/transcripts
    hostname: str = field(default_factory=socket.gethostname)


def _challenge(instruction: str) -> tuple[str, str, str, Sequence[tuple[str, bool]]]:
    return (KBDINT_NAME, instruction, "", [(KBDINT_PROMPT, False)])


def _state(handshake: AgentHandshake) -> AgentState:
    """The state now (a function call, so type checkers do not carry it across an await)."""
    return handshake.state


class HostKey:
    """The agent's ephemeral Ed25519 host key, for asyncssh and for sealing its transcript."""

    def __init__(self) -> None:
        private = ed25519.Ed25519PrivateKey.generate()
        self.signer = KeySigner(private)
        self.blob = self.signer.public_blob
        self.fingerprint = fingerprint(self.blob)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        self.ssh_key = asyncssh.import_private_key(pem)


class Agent:
    """Listens, runs consent for each connection, serves the one session it approves."""

    def __init__(self, settings: AgentSettings, observer: Observer) -> None:
        self.settings = settings
        self.observer = observer
        self.host_key = HostKey()
        self.codes = CodeBook(ttl=settings.ttl)
        self.session: AgentSession | None = None
        self.session_started = asyncio.Event()  # set once consent opened a session
        self._server: asyncssh.SSHAcceptor | None = None
        self._ended: asyncio.Future[SessionEnd] | None = None
        self._watch: asyncio.Task[None] | None = None
        self.address: tuple[str, int] = ("", 0)

    @property
    def transcripts(self) -> Path:
        return self.settings.transcripts or paths.data_dir() / "transcripts"

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, tunnel: Any = None
    ) -> tuple[str, int]:
        """Listen on ``host:port`` (0: a free port); returns the address really bound.

        ``tunnel``: listen through a relay instead (a
        :class:`toolkit.transport.relay.AgentRendezvous`); its ``new_code`` makes the
        codes, whose first group is the rendezvous name, and the address is the relay's.
        """
        self._ended = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncssh.create_server(
                lambda: AgentConnection(self),
                host,
                port,
                tunnel=tunnel if tunnel is not None else (),
                server_host_keys=[self.host_key.ssh_key],
                encryption_algs=CIPHERS,
                kbdint_auth=True,
                password_auth=False,
                public_key_auth=False,
                gss_host=None,
                # A PTY only where the customer may grant a shell; even then only the
                # channel of an armed shell accepts one (AgentConnection.session_requested).
                allow_pty=Scope.SHELL in self.settings.offered,
                line_editor=False,
                agent_forwarding=False,
                x11_forwarding=False,
                login_timeout=self.settings.approval_timeout + 60,
                keepalive_interval=15,
                keepalive_count_max=4,
                window=WINDOW,
                max_pktsize=MAX_PACKET,
                server_version="toolkit",
                encoding=None,
            )
        except OSError as exc:
            raise TransportError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                hint="Choose another address with --listen HOST:PORT (port 0 picks a free one).",
            ) from None
        if tunnel is not None:
            self.codes = CodeBook(ttl=self.settings.ttl, generate=tunnel.new_code)
            self.address = tunnel.address
        else:
            sockname = self._server.sockets[0].getsockname()
            self.address = (str(sockname[0]), int(sockname[1]))
        self.observer.new_code(self.codes.current)
        self._watch = asyncio.create_task(self._watch_code())
        return self.address

    async def wait(self) -> SessionEnd:
        """Until the session ends (or :meth:`stop`); then stop listening."""
        assert self._ended is not None, "start() first"
        try:
            return await self._ended
        finally:
            await self._close()

    async def stop(self, reason: str) -> None:
        """End now: the running session for both sides, or the wait for one."""
        if self.session is not None:
            await self.session.end(reason, notify=True)
        else:
            self.finished(SessionEnd(reason, None))

    def finished(self, end: SessionEnd) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(end)

    async def _close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _watch_code(self) -> None:
        # An expired code is replaced, so the customer always has one to read out.
        while True:
            await asyncio.sleep(1.0)
            if self.session is None and self.codes.current.state is CodeState.EXPIRED:
                self.fresh_code("the code expired")

    def fresh_code(self, why: str) -> None:
        self.observer.say(f"{why}; here is a new one")
        self.observer.new_code(self.codes.fresh())

    # -- consent -------------------------------------------------------------------

    def handshake(self) -> AgentHandshake:
        return AgentHandshake(
            self.codes.current,
            self.host_key.blob,
            self.settings.offered,
            trust=self.settings.trust,
        )

    def refused(self, exc: ConsentError, peer: str) -> None:
        self.observer.say(f"refused {peer}: {exc.message}")
        if self.session is None and self.codes.current.state is CodeState.BURNED:
            self.fresh_code("the code is burned")

    async def decide(self, request: ApprovalRequest) -> Decision:
        try:
            return await asyncio.wait_for(
                get_decision(self.settings.approver, request), self.settings.approval_timeout
            )
        except TimeoutError:
            self.observer.say("no answer in time: declined")
        except Exception:  # an approver that breaks must mean no, never yes
            logger.exception("the approval prompt failed")
        return request.decline()

    def begin(self, consent: Consent, connection: asyncssh.SSHServerConnection) -> AgentSession:
        if self.session is not None:  # cannot happen: the code was consumed once
            raise UsageError("this agent already serves a session")
        self.session = AgentSession(self, consent, connection)
        self.session_started.set()
        return self.session


class AgentConnection(asyncssh.SSHServer):
    """One SSH connection: consent in keyboard-interactive rounds, then the session."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._conn: asyncssh.SSHServerConnection | None = None
        self._handshake: AgentHandshake | None = None
        self._session: AgentSession | None = None
        self._peer = "a connection"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")
        if peer:
            self._peer = f"{peer[0]}:{peer[1]}"
        self._agent.observer.say(f"connection from {self._peer}")

    def connection_lost(self, exc: Exception | None) -> None:
        handshake = self._handshake
        if handshake is not None and handshake.state in (
            AgentState.AWAITING_RESPONSE,
            AgentState.AWAITING_APPROVAL,
            AgentState.AWAITING_ACK,
        ):
            consumed = handshake.state is not AgentState.AWAITING_RESPONSE
            handshake.refused()
            self._agent.observer.say(f"{self._peer} left before the session started")
            if consumed and self._agent.session is None:
                self._agent.fresh_code("the code was used")
        if self._session is not None:
            why = f"the connection was lost: {exc}" if exc else "the technician disconnected"
            asyncio.get_running_loop().create_task(self._session.end(why))

    def begin_auth(self, username: str) -> bool:
        return True  # every connection must go through consent

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(self, username: str, lang: str, submethods: str) -> Any:
        if self._handshake is not None:
            # One consent attempt per connection. Refusing only this round would let a
            # client retry for the whole login timeout, so hang up (as OpenSSH's
            # MaxAuthTries does).
            assert self._conn is not None
            self._conn.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "one consent attempt per connection"
            )
            return False
        self._handshake = handshake = self._agent.handshake()
        try:
            return _challenge(handshake.challenge())
        except ConsentError as exc:
            return self._notice(exc)

    def _notice(self, exc: ConsentError) -> Any:
        self._agent.refused(exc, self._peer)
        assert self._handshake is not None
        notice = self._handshake.notice()
        return _challenge(notice) if notice is not None else False

    async def validate_kbdint_response(self, username: str, responses: Sequence[str]) -> Any:
        handshake = self._handshake
        if handshake is None or len(responses) != 1:
            return False
        answer = responses[0]
        if handshake.state is AgentState.AWAITING_RESPONSE:
            try:
                request = handshake.receive_response(answer)
            except ConsentError as exc:
                return self._notice(exc)
            self._agent.observer.say(
                f"{request.name} <{request.email}> asks for {', '.join(sorted(request.requested))}"
                f" on ticket {request.ticket}"
            )
            decision = await self._agent.decide(request)
            if _state(handshake) is not AgentState.AWAITING_APPROVAL:
                return False  # the connection went away while the customer decided
            try:
                return _challenge(handshake.approved(decision))
            except ConsentError as exc:
                reply = self._notice(exc)
                self._agent.fresh_code("the session was declined")
                return reply
        if handshake.state is AgentState.AWAITING_ACK:
            try:
                consent = handshake.receive_ack(answer)
            except ConsentError as exc:
                return self._notice(exc)
            assert self._conn is not None
            self._session = self._agent.begin(consent, self._conn)
            return True
        return False  # a notice was answered, or anything out of turn

    def session_requested(self) -> Any:
        session = self._session
        if session is None:
            return False
        if session.channel is None:
            return SessionChannel(session)
        shell = session.shell_channel()
        if shell is not None:
            channel = ShellChannel(shell)
            if shell.claim(channel):
                return channel
        session.refuse_channel("a second session channel")
        return False

    # Nothing else is offered; asyncssh refuses these by default, the agent also records them.

    def _refuse(self, what: str) -> bool:
        if self._session is not None:
            self._session.refuse_channel(what)
        return False

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Any:
        return self._refuse("port forwarding (direct-tcpip)")

    def server_requested(self, listen_host: str, listen_port: int) -> Any:
        return self._refuse("remote port forwarding (tcpip-forward)")

    def unix_connection_requested(self, dest_path: str) -> Any:
        return self._refuse("socket forwarding (direct-streamlocal)")

    def unix_server_requested(self, listen_path: str) -> Any:
        return self._refuse("remote socket forwarding (streamlocal-forward)")


__all__ = ["Agent", "AgentConnection", "AgentSettings", "HostKey", "Observer", "SessionEnd"]
