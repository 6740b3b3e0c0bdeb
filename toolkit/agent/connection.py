"""One SSH connection to the agent: consent in keyboard-interactive rounds, then the session.

Split from toolkit.agent.server, which loads this module (asyncssh, SPAKE2
and the session's modules) only once toolkit share has shown its code.

An answer to the code is checked only after its source address has waited
its turn (toolkit.consent._sources): a source whose tries failed is slowed,
others are not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncssh

from toolkit.addresses import source_of
from toolkit.agent.session import AgentSession, SessionChannel
from toolkit.agent.shell import ShellChannel
from toolkit.consent import (
    KBDINT_NAME,
    KBDINT_PROMPT,
    AgentHandshake,
    AgentState,
    Consent,
    ConsentError,
    scope_names,
)
from toolkit.consent._grant import AgentGrantHandshake, GrantAgentState, is_grant_answer
from toolkit.errors import TranscriptWriteError, UsageError
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.agent.server import Agent

#: How long a technician has to hear that the session could not start before share ends.
NOT_STARTED_GRACE = 5.0


def _challenge(instruction: str) -> tuple[str, str, str, Sequence[tuple[str, bool]]]:
    return (KBDINT_NAME, instruction, "", [(KBDINT_PROMPT, False)])


def _state(handshake: AgentHandshake) -> AgentState:
    """The state now (a function call, so type checkers do not carry it across an await)."""
    return handshake.state


def _code_taken(handshake: AgentHandshake | None) -> bool:
    return handshake is not None and handshake.state is AgentState.AWAITING_RESPONSE


class AgentConnection(asyncssh.SSHServer):
    """One SSH connection: consent in keyboard-interactive rounds, then the session."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._conn: asyncssh.SSHServerConnection | None = None
        self._handshake: AgentHandshake | None = None
        #: The grant's handshake, when the agent takes grants (beside the code, or alone).
        self._grants: AgentGrantHandshake | None = None
        self._asked = False  # one consent attempt per connection
        self._session: AgentSession | None = None
        self._peer = "a connection"
        self._source = source_of(None)
        self._not_started: TranscriptWriteError | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")
        if peer:
            self._peer = f"{peer[0]}:{peer[1]}"
            self._source = source_of(str(peer[0]))
        self._agent.observer.say(f"connection from {self._peer}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._agent.release(self)
        handshake = self._handshake
        if handshake is not None and handshake.state in (
            AgentState.AWAITING_RESPONSE,
            AgentState.AWAITING_APPROVAL,
            AgentState.AWAITING_ACK,
        ):
            consumed = handshake.state is not AgentState.AWAITING_RESPONSE
            handshake.refused()
            self._agent.observer.say(f"{self._peer} left before the session started")
            if consumed:
                self._agent.code_unusable("used")
        grants = self._grants
        if grants is not None and grants.state in (
            GrantAgentState.AWAITING_GRANT,
            GrantAgentState.AWAITING_ACK,
        ):
            if grants.state is GrantAgentState.AWAITING_ACK:  # its use is spent, and stays so
                self._agent.observer.say(f"{self._peer} left before the session started")
            grants.refused()
        if self._not_started is not None:  # the technician heard why: share can end
            self._agent.not_started(self._not_started)
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
        if self._asked:
            # One consent attempt per connection. Refusing only this round would let a
            # client retry for the whole login timeout, so hang up (as OpenSSH's
            # MaxAuthTries does).
            assert self._conn is not None
            self._conn.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "one consent attempt per connection"
            )
            return False
        busy = self._agent.admit(self, self._peer, self._source)
        if busy is not None:  # a service at its --max-sessions: said before any consent
            self.turn_away(busy)
            return False
        self._asked = True
        self._grants = grants = self._agent.grant_handshake(self._peer)
        alone = grants.challenge() if grants is not None else None
        if not self._agent.settings.codes:
            assert alone is not None, "an agent without codes takes grants"
            return _challenge(alone)
        self._handshake = handshake = self._agent.handshake(
            grants.nonce if grants is not None else None
        )
        try:
            return _challenge(handshake.challenge())
        except ConsentError as exc:
            if alone is not None:  # the code cannot be used; a grant still can
                return _challenge(alone)
            return self._notice(exc)

    def turn_away(self, why: str) -> None:
        """Hang up before a session starts, saying ``why`` (a service full or stopping)."""
        if self._conn is not None and self._session is None:
            self._conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, why)

    def _notice(self, exc: ConsentError) -> Any:
        self._agent.refused(exc, self._peer, self._source)
        assert self._handshake is not None
        notice = self._handshake.notice()
        return _challenge(notice) if notice is not None else False

    def _grant_notice(self, exc: ConsentError) -> Any:
        self._agent.refused(exc, self._peer, self._source)
        if exc.reason == "nothing-offered":  # a Declined: refused() leaves it unsaid
            self._agent.observer.say(f"refused {self._peer}: {exc.message}")
        assert self._grants is not None
        notice = self._grants.notice()
        return _challenge(notice) if notice is not None else False

    def _by_grant(self, grants: AgentGrantHandshake, answer: str) -> Any:
        """Round 1 answered with a grant: the code is not tried, and loses no try."""
        if self._handshake is not None and _code_taken(self._handshake):
            self._handshake.refused()  # abandoned: it costs the code nothing
        try:
            reply = grants.receive_grant(answer)
        except ConsentError as exc:
            return self._grant_notice(exc)
        admission, consent = grants.admission, grants.consent
        assert admission is not None and consent is not None
        self._agent.observer.say(
            printable(
                f"grant {admission.grant.id} by {admission.issuer} (use {admission.use} of "
                f"{admission.uses}) lets {consent.name} <{consent.email}> "
                f"{consent.fingerprint} in on ticket {consent.ticket}, for "
                f"{', '.join(scope_names(consent.granted))}; nobody is asked",
                None,
            )
        )
        return _challenge(reply)

    def _start_session(self, consent: Consent, refuse: AgentHandshake | AgentGrantHandshake) -> Any:
        """The session consent opened, or the notice that it could not start."""
        assert self._conn is not None
        try:
            self._session = self._agent.begin(consent, self._conn)
            self._agent.settled(self)
        except UsageError:
            # Another session started meanwhile (share serves one; two grants may pass
            # consent at once). This one does not start; its use stays spent, and says so.
            grants = self._agent.settings.grants
            if grants is not None:
                grants.finished(consent, "not started: another session was running", None)
            self._agent.observer.say(f"{self._peer}: no second session while one runs")
            refuse.not_started()
            notice = refuse.notice()
            return _challenge(notice) if notice is not None else False
        except TranscriptWriteError as exc:
            # No session without the customer's copy. The technician hears it in one
            # more challenge; share ends once they hung up (or after a grace period).
            self._not_started = exc
            refuse.not_started()
            notice = refuse.notice()
            asyncio.get_running_loop().call_later(NOT_STARTED_GRACE, self._agent.not_started, exc)
            return _challenge(notice) if notice is not None else False
        return True

    async def validate_kbdint_response(self, username: str, responses: Sequence[str]) -> Any:
        if len(responses) != 1:
            return False
        answer = responses[0]
        grants = self._grants
        if grants is not None:
            if grants.state is GrantAgentState.AWAITING_GRANT and (
                is_grant_answer(answer) or not _code_taken(self._handshake)
            ):
                return self._by_grant(grants, answer)
            if grants.state is GrantAgentState.AWAITING_ACK:
                try:
                    consent = grants.receive_ack(answer)
                except ConsentError as exc:
                    return self._grant_notice(exc)
                return self._start_session(consent, grants)
            if grants.state is GrantAgentState.AWAITING_GRANT:
                grants.refused()  # the code's answer came: no grant on this connection
        handshake = self._handshake
        if handshake is None:
            return False
        if handshake.state is AgentState.AWAITING_RESPONSE:
            wait = self._agent.sources.wait(self._source)
            if wait > 0:  # this source's tries failed before: its answer waits its turn
                await asyncio.sleep(wait)
                if _state(handshake) is not AgentState.AWAITING_RESPONSE:
                    return False  # the connection went away meanwhile
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
                # Not let in (share then ends, unless the customer asks for a new code),
                # or a yes the handshake could not take.
                self._agent.code_unusable(decision.reason or "used")
                return reply
        if handshake.state is AgentState.AWAITING_ACK:
            try:
                consent = handshake.receive_ack(answer)
            except ConsentError as exc:
                return self._notice(exc)
            return self._start_session(consent, handshake)
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


__all__ = ["AgentConnection"]
