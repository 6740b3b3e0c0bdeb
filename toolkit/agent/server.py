"""The agent: an SSH server that opens nothing until the customer has consented.

Every SSH connection goes through keyboard-interactive authentication only;
its rounds carry the consent handshake (toolkit.consent, docs/consent.md).
Authentication succeeds only when the code checked out and the customer said
yes, so no channel can open before. After that, one channel is accepted: the
``toolkit-session-v1`` subsystem (no shell, exec, PTY or forwarding), served
by :class:`toolkit.agent.session.AgentSession`; with the shell scope, one more
session channel per ``shell`` request, with a PTY (toolkit.agent.shell). A
share's agent serves one session, then stops; a service (``settings.service``,
toolkit serve) serves many, one after the other and at once, each with its own
transcript, and stops only when told (:meth:`Agent.stop`).

The agent never makes a new code because of what a connection did: a code
that is burned, expires or is used without a session stays so until the
customer asks for a new one (:meth:`Agent.fresh_code`), so the guesses per
share are bounded by the customer, not by a guesser (docs/consent.md). Each
failed try is counted against its source address, whose next answer then
waits longer (toolkit.consent._sources).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from toolkit import paths
from toolkit.agent.host_key import HostKey
from toolkit.consent import (
    ApprovalRequest,
    Approver,
    CodeBook,
    CodeState,
    ConsentError,
    Decision,
    Declined,
    OneTimeCode,
    Scope,
    TrustCheck,
    get_decision,
    untrusted,
)
from toolkit.consent._approval import DECLINE_REASONS
from toolkit.consent._sources import Sources, tally
from toolkit.errors import TranscriptWriteError, TransportError, UsageError
from toolkit.plugins.catalogue import Catalogue
from toolkit.policy import Policy
from toolkit.transport.tuning import CIPHERS, MAX_PACKET, WINDOW

# asyncio, asyncssh, SPAKE2 and the session's modules load once the code can be
# shown (Agent.listen): they are most of toolkit share's start-up.
if TYPE_CHECKING:
    import asyncio

    import asyncssh

    from toolkit.agent.operations import ApproveFix, AskOutOfScope
    from toolkit.agent.session import AgentSession, SessionEnd
    from toolkit.consent import AgentHandshake, Consent
    from toolkit.consent._grant import Admission, AgentGrantHandshake
    from toolkit.grants.acceptance import GrantAcceptance

logger = logging.getLogger(__name__)

APPROVAL_TIMEOUT = 300.0
#: The reasons a code was used up because the technician was not let in: how the no came
#: about, each told to the technician in its own words.
DECLINES = frozenset(DECLINE_REASONS)  # the words of toolkit.consent.errors.DECLINES
#: asyncssh's default listen backlog.
BACKLOG = 100
#: Sessions a service runs at once unless told otherwise (toolkit serve --max-sessions).
MAX_SESSIONS = 16
#: A service's consents under way from one source address at once: a place is held from
#: the first round, so one address must not hold them all without proving anything.
CONSENTS_PER_SOURCE = 4
#: How long a grants-only service waits for a connection's consent: no person is asked,
#: so a consent takes a second; one held open longer only keeps a place from others.
GRANT_LOGIN_TIMEOUT = 30.0
#: A service's events for its log: (what, fields), e.g. ("session-start", {"session": ...}).
EventSink = Callable[[str, dict[str, Any]], None]


class Observer(Protocol):
    """What the customer sees: toolkit share prints it, tests collect it."""

    def new_code(self, code: OneTimeCode) -> None:
        """A code to show: the first, or a fresh one the customer asked for."""

    def say(self, message: str) -> None:
        """One line about what happens: connections, refusals, operations, the end."""

    def shell_size(self, width: int, height: int) -> None:
        """A shell opened, or its window changed size: the mirror's screen size."""

    def shell_output(self, data: bytes) -> None:
        """What the technician's shell printed, to mirror read-only."""

    def shell_ended(self) -> None:
        """The shell closed (its mirror can go)."""


@dataclass(frozen=True)
class CodeNotice:
    """The code on the customer's screen can no longer be used."""

    #: "burned", "expired", "used" (the technician left while the customer was asked),
    #: or how a no came about: "declined" (the customer said no), "no-answer" (no
    #: answer in time), "nobody-to-ask" or "nothing-offered": see DECLINES.
    why: str
    #: Tries of this code that failed, by source address (toolkit.consent._sources).
    failed: dict[str, int]


@dataclass
class AgentSettings:
    """What `toolkit share` decides; the defaults need no configuration at all."""

    policy: Policy
    approver: Approver
    approve_fix: ApproveFix
    offered: frozenset[Scope] = frozenset({Scope.DIAGNOSTICS})
    #: Asks the customer about a fix outside the granted scope; None refuses it outright.
    ask_out_of_scope: AskOutOfScope | None = None
    #: Told when the shown code can no longer be used (the customer may ask for a new one).
    code_unusable: Callable[[CodeNotice], None] | None = None
    trust: TrustCheck = untrusted
    ttl: float = 600.0
    approval_timeout: float = APPROVAL_TIMEOUT
    #: The procedures installed here (default: the installed plugins').
    catalogue: Catalogue = field(default_factory=Catalogue.installed)
    transcripts: Path | None = None  # default: <data dir>/transcripts
    hostname: str = field(default_factory=socket.gethostname)
    #: Grants taken in place of the code (--accept-grants-from); None: the code only.
    grants: GrantAcceptance | None = None
    #: False: grants only, no code is shown or taken.
    codes: bool = True
    #: A service (toolkit serve): many sessions, one after the other and at once; the end
    #: of one never stops the agent. False: toolkit share, one session then the end.
    service: bool = False
    #: A service's sessions at once, counting connections still in consent; more are
    #: turned away with a notice.
    max_sessions: int = MAX_SESSIONS
    #: Told of each session's start and end and each connection turned away (the log).
    events: EventSink | None = None

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise UsageError("--max-sessions must be at least 1.")


class Admitted(Protocol):
    """A connection holding one of a service's places (toolkit.agent.connection)."""

    def turn_away(self, why: str) -> None:
        """Hang up before a session starts, saying why."""


class Agent:
    """Listens, runs consent for each connection, serves the sessions it approves."""

    def __init__(
        self, settings: AgentSettings, observer: Observer, host_key: HostKey | None = None
    ) -> None:
        self.settings = settings
        self.observer = observer
        self.host_key = host_key or HostKey()
        self.codes = CodeBook(ttl=settings.ttl)
        self.sources = Sources()
        self._failed_now: Counter[str] = Counter()  # the current code's failed tries, by source
        self._reported: OneTimeCode | None = None  # the unusable code the customer was told of
        #: The session begun last: a share's one session.
        self.session: AgentSession | None = None
        #: The sessions running now, by id (a share has one at most).
        self.sessions: dict[str, AgentSession] = {}
        self._admitted: set[Admitted] = set()  # connections with a place (consent or session)
        #: Of those, the ones still in consent, with their source address.
        self._consenting: dict[Admitted, str] = {}
        self._unstarted: weakref.WeakSet[TranscriptWriteError] = weakref.WeakSet()
        self._stopping = False
        self._sock: socket.socket | None = None
        self._server: asyncssh.SSHAcceptor | None = None
        self._ended: asyncio.Future[SessionEnd] | None = None
        self._watch: asyncio.Task[None] | None = None
        self.address: tuple[str, int] = ("", 0)

    @cached_property
    def session_started(self) -> asyncio.Event:
        """Set once consent opened a session."""
        import asyncio

        return asyncio.Event()

    @property
    def transcripts(self) -> Path:
        return self.settings.transcripts or paths.data_dir() / "transcripts"

    def listen(self, host: str = "127.0.0.1", port: int = 0) -> bool:
        """Listen on ``host:port`` (0: a free port) and show the code; :meth:`start` serves.

        The code is shown as soon as the address is known: the SSH server (its
        modules are most of the agent's start-up) is ready long before anyone
        can type the code, and a connection that comes sooner waits in the
        listen backlog. False for a host name with several addresses, one
        socket each: then :meth:`start` listens, and shows the code after.
        """
        if self._sock is None:
            self._sock = _listening_socket(host, port)
            if self._sock is None:
                return False
            sockname = self._sock.getsockname()
            self.address = (str(sockname[0]), int(sockname[1]))
            self.observer.new_code(self.codes.current)
        return True

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, tunnel: Any = None
    ) -> tuple[str, int]:
        """Listen on ``host:port`` (0: a free port), unless :meth:`listen` did; serve.

        Returns the address really bound. ``tunnel``: listen through a relay
        instead (a :class:`toolkit.transport.relay.AgentRendezvous`); its
        ``new_code`` makes the codes, whose first group is the rendezvous name,
        and the address is the relay's.
        """
        import asyncio

        self._ended = asyncio.get_running_loop().create_future()
        if tunnel is None:
            self.listen(host, port)
        sock, self._sock = self._sock, None
        from toolkit.transport._asyncssh import load

        load()  # before the modules below import it
        import asyncssh

        from toolkit.agent.connection import AgentConnection
        from toolkit.transport.batching import DirectTCP

        try:
            self._server = await asyncssh.create_server(
                lambda: AgentConnection(self),
                host if sock is None else "",
                port if sock is None else 0,
                # Directly, too, through a tunnel: asyncssh's writes go out batched.
                tunnel=tunnel if tunnel is not None else DirectTCP(sock),
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
                login_timeout=(
                    self.settings.approval_timeout + 60
                    if self.settings.codes
                    else GRANT_LOGIN_TIMEOUT
                ),
                keepalive_interval=15,
                keepalive_count_max=4,
                window=WINDOW,
                max_pktsize=MAX_PACKET,
                server_version="toolkit",
                encoding=None,
            )
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise _cannot_listen(host, port, exc) from None
        if tunnel is not None:
            self.codes = CodeBook(ttl=self.settings.ttl, generate=tunnel.new_code)
            self.address = tunnel.address
        elif sock is None:
            sockname = self._server.sockets[0].getsockname()
            self.address = (str(sockname[0]), int(sockname[1]))
        if sock is None:
            self.observer.new_code(self.codes.current)
        if not self.settings.service:  # a service has nobody to tell of an expired code
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
        """End now: the running session for both sides, or the wait for one.

        A service first stops accepting connections and hangs up on those still
        in consent, then ends every running session (each sealing its copy).
        """
        if self.settings.service:
            await self._stop_service(reason)
        elif self.session is not None:
            await self.session.end(reason, notify=True)
        else:
            from toolkit.agent.session import SessionEnd

            self.finished(SessionEnd(reason, None))

    async def _stop_service(self, reason: str) -> None:
        import asyncio

        from toolkit.agent.session import SessionEnd

        self._stopping = True
        if self._server is not None:
            self._server.close()  # no new connections; those open go on below
        for connection in list(self._admitted):
            connection.turn_away(reason)  # in consent: no session starts now
        running = list(self.sessions.values())
        await asyncio.gather(*(s.end(reason, notify=True) for s in running))
        self.finished(SessionEnd(reason, None))

    def finished(self, end: SessionEnd) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(end)

    def session_ended(self, session: AgentSession, end: SessionEnd) -> None:
        """A session ended (its copy sealed): a share ends with it, a service goes on."""
        self.sessions.pop(session.id, None)
        self._event(
            "session-end",
            session=session.id,
            reason=end.reason,
            transcript=str(end.transcript) if end.transcript else None,
            sealed=end.failure is None,
        )
        if not self.settings.service:
            self.finished(end)

    def _event(self, what: str, **fields: Any) -> None:
        if self.settings.events is not None:
            self.settings.events(what, fields)

    # -- admission (a service's bound on sessions at once) --------------------------

    def admit(self, connection: Admitted, peer: str, source: str = "") -> str | None:
        """Give ``connection`` a place for its consent and session; why not, if it gets none.

        A place is held from the consent's first round until the connection
        closes, so that consents under way count: every one of them may become
        a session. One source address holds at most CONSENTS_PER_SOURCE places
        in consent at once, and a grants-only service ends a consent after
        GRANT_LOGIN_TIMEOUT, so that nobody holds every place without proving
        anything. A share takes anyone to its one code.
        """
        if not self.settings.service:
            return None
        if self._stopping:
            return "the agent is stopping; try again once it is back"
        if connection in self._admitted:
            return None
        most = self.settings.max_sessions
        if len(self._admitted) >= most:
            self._event("busy", peer=peer, max_sessions=most)
            self.observer.say(f"turned {peer} away: {most} sessions at once at most")
            return f"the agent already serves {most} sessions at once, its most; try again later"
        if sum(1 for s in self._consenting.values() if s == source) >= CONSENTS_PER_SOURCE:
            self._event("busy", peer=peer, consents_per_source=CONSENTS_PER_SOURCE)
            self.observer.say(f"turned {peer} away: too many consents under way from its address")
            return (
                f"{CONSENTS_PER_SOURCE} consents from your address are under way already; "
                "try again once they are done"
            )
        self._admitted.add(connection)
        self._consenting[connection] = source
        return None

    def settled(self, connection: Admitted) -> None:
        """``connection``'s consent passed: its place is a session's now."""
        self._consenting.pop(connection, None)

    def release(self, connection: Admitted) -> None:
        """``connection`` closed: its place is free."""
        self._admitted.discard(connection)
        self._consenting.pop(connection, None)

    @property
    def _one_session(self) -> bool:
        """A share whose one session has begun: its code matters no more."""
        return not self.settings.service and self.session is not None

    async def _close(self) -> None:
        if self._sock is not None:  # listened, never served
            self._sock.close()
            self._sock = None
        if self._watch is not None:
            self._watch.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _watch_code(self) -> None:
        import asyncio

        # An expired code stays expired until the customer asks for a new one; they are
        # told once. A connection never makes a new code, so nobody can drive a loop.
        while True:
            await asyncio.sleep(1.0)
            if not self._one_session and self.codes.current.state is CodeState.EXPIRED:
                self.code_unusable("expired")

    def fresh_code(self, why: str) -> None:
        """Replace the code: the customer asked (or a relay renamed the rendezvous)."""
        if self._one_session:
            self.observer.say("a session is running: no new code")
            return
        self._failed_now.clear()
        self.observer.say(f"{why}: making a new one")
        self.observer.new_code(self.codes.fresh())

    def code_unusable(self, why: str) -> None:
        """Tell the customer, once per code, that the code shown cannot be used any more."""
        code = self.codes.current
        if self._one_session or self._reported is code:
            return
        self._reported = code
        failed = dict(self._failed_now)
        detail = f" ({tally(failed)})" if failed else ""
        if why == "burned":
            self.observer.say(
                f"the code is burned after {sum(failed.values())} failed tries{detail}"
            )
        elif why == "expired":
            self.observer.say(f"the code expired{detail}")
        elif why in DECLINES:
            self.observer.say(f"no session started, and the code is used up{detail}")
        else:
            self.observer.say(f"the code was used, and no session runs{detail}")
        if self.settings.code_unusable is not None:
            self.settings.code_unusable(CodeNotice(why, failed))

    # -- consent -------------------------------------------------------------------

    def handshake(self, nonce: bytes | None = None) -> AgentHandshake:
        """The code's handshake; ``nonce``: a grant's, offered beside it in round 1."""
        from toolkit.consent import AgentHandshake

        return AgentHandshake(
            self.codes.current,
            self.host_key.blob,
            self.settings.offered,
            trust=self.settings.trust,
            previous=self.codes.previous,
            nonce=nonce,
        )

    def grant_handshake(self, peer: str) -> AgentGrantHandshake | None:
        """The grant's handshake for a connection from ``peer``; None unless grants are taken."""
        grants = self.settings.grants
        if grants is None or self._one_session:  # share serves one session
            return None
        from toolkit.consent._grant import AgentGrantHandshake, GrantClaim

        offered = self.settings.offered
        host_key = self.host_key.blob

        def admit(claim: GrantClaim) -> Admission:
            return grants.admit(claim, host_key=host_key, offered=offered, peer=peer)

        return AgentGrantHandshake(host_key, admit)

    def refused(self, exc: ConsentError, peer: str, source: str) -> None:
        """A handshake was refused; one that cost the code a try counts against ``source``."""
        if getattr(exc, "tries_left", None) is not None:
            self.sources.failed(source)
            self._failed_now[source] += 1
        if not isinstance(exc, Declined):  # a no: the customer saw it come (code_unusable)
            self.observer.say(f"refused {peer}: {exc.message}")
        if not self._one_session and self.codes.current.state is CodeState.BURNED:
            self.code_unusable("burned")

    async def decide(self, request: ApprovalRequest) -> Decision:
        import asyncio

        try:
            return await asyncio.wait_for(
                get_decision(self.settings.approver, request), self.settings.approval_timeout
            )
        except TimeoutError:
            self.observer.say("no answer in time: declined")
            return request.decline("no-answer")
        except Exception:  # an approver that breaks must mean no, never yes
            logger.exception("the approval prompt failed")
        return request.decline()

    def begin(self, consent: Consent, connection: asyncssh.SSHServerConnection) -> AgentSession:
        """The session consent opened; TranscriptWriteError if its copy cannot be made.

        Then no session runs: call :meth:`not_started` once the technician was told.
        """
        if self._one_session:  # cannot happen: the code was consumed once
            raise UsageError("this agent already serves a session")
        from toolkit.agent.session import AgentSession

        session = AgentSession(self, consent, connection)
        self.session = self.sessions[session.id] = session
        self._event(
            "session-start",
            session=session.id,
            technician=consent.email,
            name=consent.name,
            key=consent.fingerprint,
            ticket=consent.ticket,
            granted=sorted(s.value for s in consent.granted),
            transcript=str(session.path),
        )
        self.session_started.set()
        return session

    def not_started(self, exc: TranscriptWriteError) -> None:
        """Consent passed but no session could start (no customer's copy): share ends.

        A service goes on (its log says why): the next session may find room.
        """
        from toolkit.agent.session import SessionEnd

        why = "the customer's transcript could not be created"
        if self.settings.service:
            if exc not in self._unstarted:  # told twice: when heard, and when hung up
                self._unstarted.add(exc)
                self._event("session-not-started", reason=why, error=exc.message)
            return
        self.finished(SessionEnd(why, None, exc))


def _listening_socket(host: str, port: int) -> socket.socket | None:
    """A socket listening on ``host:port`` as asyncio would make it; None for several addresses.

    asyncio's create_server makes one socket per address a host name resolves
    to; that case is left to it (then the code is shown once all listen).
    """
    try:
        infos = set(
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        )
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None
    if len(infos) != 1:
        return None
    ((family, kind, proto, _, address),) = infos
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
        try:
            sock.bind(address)
        except OSError as exc:  # worded as asyncio words it
            why = (exc.strerror or "").lower()
            raise OSError(
                exc.errno, f"error while attempting to bind on address {address!r}: {why}"
            ) from None
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _cannot_listen(host, port, exc) from None
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> TransportError:
    return TransportError(
        f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
        hint="Choose another address with --listen HOST:PORT (port 0 picks a free one).",
    )


__all__ = ["DECLINES", "Agent", "AgentSettings", "CodeNotice", "HostKey", "Observer"]
