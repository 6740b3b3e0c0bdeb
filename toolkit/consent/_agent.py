"""The customer's side of the consent handshake: one object per keyboard-interactive attempt.

The agent wires the machines together (the "boss" of this side): the
one-time code, the PAKE (side B), the confirmation (which will not release
the agent's MAC before the technician's checks out), and the approval step,
which the caller runs by asking an :class:`~toolkit.consent.Approver`.

Each method is one input; the table at the bottom of the class names every
(state, input) pair. In REFUSED and CLOSED, inputs that need an answer
raise the same refusal again (never costing another try) and ``refused()``
is silent. docs/consent.md shows how asyncssh's ``get_kbdint_challenge``
and ``validate_kbdint_response`` drive it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import NoReturn

from toolkit.consent._approval import ApprovalRequest, Consent, Decision, Scope
from toolkit.consent._code import CodeSource
from toolkit.consent._confirm import (
    PURPOSE_CONFIRM_CODE,
    PURPOSE_PREVIOUS_CODE,
    AgentConfirmation,
    Transcript,
    code_mac,
    same_mac,
    verify_transcript_signature,
)
from toolkit.consent._machine import Input, Machine, bug, move, stay, table
from toolkit.consent._messages import (
    Confirm,
    MessageError,
    Notice,
    PakeChallenge,
    Response,
    decode_response,
)
from toolkit.consent._outputs import Outputs
from toolkit.consent._pake import Pake, Side
from toolkit.consent._trust import TrustCheck, trust_from_allowed_signers, untrusted
from toolkit.consent.errors import (
    DECLINES,
    CodeExpired,
    ConsentError,
    Declined,
    KeyMismatch,
    MalformedMessage,
    SessionNotStarted,
    WrongCode,
)
from toolkit.identity.keys import fingerprint
from toolkit.secrets import Secret


class AgentState(enum.Enum):
    READY = "ready"
    AWAITING_RESPONSE = "awaiting-response"
    AWAITING_APPROVAL = "awaiting-approval"
    AWAITING_ACK = "awaiting-ack"
    DONE = "done"
    REFUSED = "refused"
    CLOSED = "closed"


_S = AgentState
_CHALLENGE: Input[str] = Input("challenge")
_RESPONSE: Input[ApprovalRequest] = Input("receive_response")
_APPROVED: Input[str] = Input("approved")
_REFUSED: Input[None] = Input("refused")
_ACK: Input[Consent] = Input("receive_ack")
_NOTICE: Input[str | None] = Input("notice")
_NOT_STARTED: Input[None] = Input("not_started")


#: The agent's words for each way a no came about (DECLINES), as its transcript and log keep them.
_DECLINED_TEXT = {
    "declined": "The customer declined the session.",
    "no-answer": "The customer did not answer in time.",
    "nobody-to-ask": "Nobody could be asked: toolkit share has no terminal and no --yes.",
    "nothing-offered": "Nothing the technician asked for is offered.",
}


def _tries_text(tries_left: int) -> str:
    if tries_left <= 0:
        return "the code is now burned"
    return f"{tries_left} {'try' if tries_left == 1 else 'tries'} left"


class AgentHandshake(Machine[AgentState]):
    """The agent's handshake against ``code``, for one keyboard-interactive attempt.

    ``host_key`` is the agent's own SSH host public key blob; ``offered`` the
    scopes the customer offers at most; ``trust`` decides the ``trusted`` flag
    of the approval request (default: nobody); ``previous`` the digits of the
    code ``code`` replaced, if any: a technician who typed that one is told it
    is old, and ``code`` loses no try; ``nonce`` the nonce of a grant's proof
    (toolkit.consent._grant), offered in round 1 when the agent takes grants too.

    Inputs, in protocol order::

        challenge()            -> round-1 instruction        (READY -> AWAITING_RESPONSE)
        receive_response(text) -> ApprovalRequest            (-> AWAITING_APPROVAL)
        approved(decision)     -> round-2 instruction        (-> AWAITING_ACK)
        receive_ack(text)      -> Consent                    (-> DONE: let auth succeed)
        refused()              customer said no, gave up, or the connection closed
        not_started()          after receive_ack: the session could not start (DONE -> REFUSED)
        notice()               after a refusal: the one notice to send, then None

    Refusals raise a ConsentError subclass after entering REFUSED; a wrong
    MAC or a malformed answer also costs the code one try. A right code with
    a wrong transcript MAC (another host key: someone in the middle) is
    KeyMismatch, which costs a try too.
    """

    State = AgentState

    def __init__(
        self,
        code: CodeSource,
        host_key: bytes,
        offered: Iterable[Scope],
        *,
        trust: TrustCheck = untrusted,
        previous: Secret | None = None,
        nonce: bytes | None = None,
    ) -> None:
        self._code = code
        self._nonce = nonce  # offered beside the PAKE when the agent takes grants too
        self._host_key = host_key
        self._offered = frozenset(Scope(s) for s in offered)
        self._trust = trust
        self._out = Outputs()
        self._pake = Pake(Side.AGENT, self._out)
        self._previous_code = previous
        self._old = Outputs()  # the PAKE keyed with the replaced code, if any
        self._old_pake = Pake(Side.AGENT, self._old) if previous is not None else None
        self._challenge: str | None = None
        self._confirm: AgentConfirmation | None = None
        self._request: ApprovalRequest | None = None
        self._consent: Consent | None = None
        self._error: ConsentError | None = None
        self._state = AgentState.READY

    @property
    def error(self) -> ConsentError | None:
        """Why the handshake was refused, once it was."""
        return self._error

    @property
    def request(self) -> ApprovalRequest | None:
        return self._request

    # --- inputs ------------------------------------------------------------

    def challenge(self) -> str:
        """The round-1 instruction: the agent's PAKE message.

        Raises CodeUsed/CodeBurned/CodeExpired (entering REFUSED) when the code
        cannot be used; send ``notice()`` instead then.
        """
        return self._fire(_CHALLENGE)

    def receive_response(self, text: str) -> ApprovalRequest:
        """The technician's round-1 answer; returns what to ask the customer."""
        return self._fire(_RESPONSE, text)

    def approved(self, decision: Decision) -> str:
        """The customer's decision; returns the round-2 instruction (or raises Declined)."""
        return self._fire(_APPROVED, decision)

    def refused(self) -> None:
        """Give up: the customer said no, the approval was cancelled, or the connection closed."""
        self._fire(_REFUSED)

    def receive_ack(self, text: str) -> Consent:
        """The technician's round-2 answer (empty): consent is complete, auth may succeed."""
        return self._fire(_ACK, text)

    def not_started(self) -> None:
        """Consent was complete, but the agent could not start the session: tell the technician.

        The next ``notice()`` says so (SessionNotStarted), as one more challenge.
        """
        self._fire(_NOT_STARTED)

    def notice(self) -> str | None:
        """After a refusal, the notice telling the technician why; None once it was given."""
        return self._fire(_NOTICE)

    # --- actions -----------------------------------------------------------

    def _fail(self, error: ConsentError) -> NoReturn:
        self._error = error
        self._enter(AgentState.REFUSED)
        raise error

    def _costly(self, detail: str) -> NoReturn:
        tries = self._code.failed()
        self._fail(
            MalformedMessage(
                f"A connection attempt sent a malformed consent answer ({detail}); "
                f"it counts as a wrong try ({_tries_text(tries)}).",
                tries_left=tries,
            )
        )

    def _start(self) -> str:
        try:
            secret = self._code.begin()
        except ConsentError as exc:
            self._fail(exc)
        self._pake.got_code(secret)
        previous, self._previous_code = self._previous_code, None
        if self._old_pake is not None and previous is not None:
            self._old_pake.got_code(previous)
        if self._out.message is None:  # pragma: no cover - the PAKE always answers a code
            raise RuntimeError("the PAKE produced no message")
        self._challenge = PakeChallenge(self._out.message, self._old.message, self._nonce).encode()
        self._enter(AgentState.AWAITING_RESPONSE)
        return self._challenge

    def _same_challenge(self) -> str:
        assert self._challenge is not None
        return self._challenge

    def _respond(self, text: str) -> ApprovalRequest:
        # 1. The code must still be usable: another attempt may have used or
        #    burned it meanwhile, or it expired. That costs no try.
        try:
            self._code.begin()
        except ConsentError as exc:
            self._fail(exc)
        # 2. Parse strictly; anything malformed costs a try.
        try:
            msg = decode_response(text)
        except MessageError as exc:
            self._costly(str(exc))
        # 3. The code this one replaced, first: whoever typed it hears that it is
        #    old, and nothing about the current code is checked, so that answer
        #    tells a guesser nothing (whatever it put in its other fields).
        self._check_previous(msg)
        # 4. SPAKE2 with the technician's message.
        self._pake.got_peer_message(msg.pake)
        key = self._out.key
        if key is None:
            self._costly("its PAKE message is not a valid SPAKE2 message")
        assert self._out.message is not None
        # 5. The code: a wrong one is a guess, and costs a try.
        if not same_mac(
            code_mac(key, msg.pake, self._out.message, PURPOSE_CONFIRM_CODE), msg.code_mac
        ):
            tries = self._code.failed()
            self._fail(
                WrongCode(
                    f"Someone tried to connect with a wrong code ({_tries_text(tries)}).",
                    tries_left=tries,
                )
            )
        # 6. The technician's MAC over what this side saw. The code was right, so a
        #    mismatch means the two ends saw different keys or fields: someone in the
        #    middle. It costs a try as well: that path cannot be trusted.
        transcript = self._transcript(msg, self._out.message)
        self._confirm = AgentConfirmation(key, transcript, self._out)
        self._confirm.check(msg.mac)
        if not self._out.verdict:
            tries = self._code.failed()
            self._fail(
                KeyMismatch(
                    "Someone typed the right code, but saw a host key other than this "
                    f"agent's ({fingerprint(self._host_key)}), or what they sent was changed "
                    "on the way: someone may be in the middle. Ask the technician which host "
                    f"key their screen shows ({_tries_text(tries)}).",
                    tries_left=tries,
                )
            )
        # 7. Whoever this is knows the code: it is used up from here on.
        self._code.succeeded()
        # 8. ...and must hold the key it names.
        try:
            verify_transcript_signature(msg.sig, transcript)
        except ConsentError as exc:
            self._fail(exc)
        self._request = ApprovalRequest(
            name=msg.name,
            email=msg.email,
            key=msg.key,
            trusted=bool(self._trust(msg.key, msg.email)),
            ticket=msg.ticket,
            requested=msg.scopes,
            offered=self._offered,
            host_key=self._host_key,
        )
        self._enter(AgentState.AWAITING_APPROVAL)
        return self._request

    def _check_previous(self, msg: Response) -> None:
        """Refuse an answer that proves the replaced code (CodeExpired, no try)."""
        old = self._old_pake
        if (old is None) != (msg.previous is None):
            self._costly("its answer to the previous-code message does not match the challenge")
        if old is None or msg.previous is None:
            return
        pake, mac = msg.previous
        old.got_peer_message(pake)
        if self._old.key is None or self._old.message is None:
            self._costly("its previous-code PAKE message is not a valid SPAKE2 message")
        expected = code_mac(self._old.key, pake, self._old.message, PURPOSE_PREVIOUS_CODE)
        if same_mac(expected, mac):
            self._fail(
                CodeExpired(
                    "Someone typed the code the current one replaced: they were told it is "
                    "old (the current code lost no try)."
                )
            )

    def _transcript(self, msg: Response, agent_pake: bytes) -> Transcript:
        return Transcript(
            technician_pake=msg.pake,
            agent_pake=agent_pake,
            host_key=self._host_key,
            technician_key=msg.key,
            name=msg.name,
            email=msg.email,
            ticket=msg.ticket,
            requested=msg.scopes,
        )

    def _out_of_turn(self, *_: object) -> NoReturn:
        self._fail(MalformedMessage("The technician's side answered out of turn."))

    def _late_answer(self, *_: object) -> NoReturn:
        raise MalformedMessage("The technician's side answered after the handshake completed.")

    def _decide(self, decision: Decision) -> str:
        assert self._request is not None and self._confirm is not None
        if not isinstance(decision, Decision):
            self._fail(Declined("The customer declined the session."))
        if not decision.approved:
            # How the no came about travels in the notice: the technician hears which.
            declined = DECLINES.get(decision.reason or "declined", Declined)
            self._fail(declined(_DECLINED_TEXT[declined.reason]))
        try:
            decision.check_against(self._request)
        except ValueError:
            self._fail(Declined("The approval granted scopes that were not requested and offered."))
        mac = self._confirm.send(decision.granted)
        consent = self._request
        self._consent = Consent(
            name=consent.name,
            email=consent.email,
            key=consent.key,
            ticket=consent.ticket,
            requested=consent.requested,
            granted=decision.granted,
            host_key=self._host_key,
            trusted=consent.trusted,
        )
        self._enter(AgentState.AWAITING_ACK)
        return Confirm(decision.granted, mac).encode()

    def _give_up(self) -> None:
        if self._state is AgentState.AWAITING_APPROVAL:
            error = Declined("The customer declined the session.")
        else:
            error = Declined("The consent handshake was abandoned before it completed.")
        self._error = error
        self._enter(AgentState.REFUSED)

    def _acknowledge(self, text: str) -> Consent:
        if text != "":
            self._fail(MalformedMessage("The technician's final answer was not empty."))
        self._enter(AgentState.DONE)
        return self._done()

    def _done(self, *_: object) -> Consent:
        assert self._consent is not None
        return self._consent

    def _cannot_start(self) -> None:
        self._error = SessionNotStarted("The customer's side could not start the session.")
        self._enter(AgentState.REFUSED)

    def _give_notice(self) -> str:
        error = self._error
        assert error is not None
        tries = getattr(error, "tries_left", None)
        self._enter(AgentState.CLOSED)
        return Notice(error.reason, tries if isinstance(tries, int) else 0).encode()

    def _repeat(self, *_: object) -> NoReturn:
        assert self._error is not None
        raise self._error.with_traceback(None)

    def _ignore(self, *_: object) -> None:
        return None

    INPUTS = (_CHALLENGE, _RESPONSE, _APPROVED, _REFUSED, _ACK, _NOTICE, _NOT_STARTED)
    INITIAL = AgentState.READY
    TRANSITIONS = table(
        {
            # READY: nothing sent yet.
            (_S.READY, _CHALLENGE): move(
                _start,
                (_S.AWAITING_RESPONSE, "/ PAKE message"),
                (_S.REFUSED, "code used, burned or expired"),
            ),
            (_S.READY, _RESPONSE): bug("challenge() comes first"),
            (_S.READY, _APPROVED): bug("nothing to approve yet"),
            (_S.READY, _REFUSED): move(_give_up, _S.REFUSED, note="abandoned"),
            (_S.READY, _ACK): bug("challenge() comes first"),
            (_S.READY, _NOTICE): bug("nothing was refused"),
            (_S.READY, _NOT_STARTED): bug("consent is not complete"),
            # AWAITING_RESPONSE: the technician's answer decides.
            (_S.AWAITING_RESPONSE, _CHALLENGE): stay(_same_challenge, "same challenge again"),
            (_S.AWAITING_RESPONSE, _RESPONSE): move(
                _respond,
                (_S.AWAITING_APPROVAL, "MAC and signature ok / ApprovalRequest\\n(code consumed)"),
                (
                    _S.REFUSED,
                    "malformed, wrong code or key mismatch (a try less);\\n"
                    "the replaced code, bad signature, code unusable (no try)",
                ),
            ),
            (_S.AWAITING_RESPONSE, _APPROVED): bug("nothing to approve yet"),
            (_S.AWAITING_RESPONSE, _REFUSED): move(_give_up, _S.REFUSED, note="abandoned"),
            (_S.AWAITING_RESPONSE, _ACK): bug("round 1 is not answered yet"),
            (_S.AWAITING_RESPONSE, _NOTICE): bug("nothing was refused"),
            (_S.AWAITING_RESPONSE, _NOT_STARTED): bug("consent is not complete"),
            # AWAITING_APPROVAL: the code is used up; the customer decides.
            (_S.AWAITING_APPROVAL, _CHALLENGE): bug("the challenge was answered"),
            (_S.AWAITING_APPROVAL, _RESPONSE): move(
                _out_of_turn, _S.REFUSED, note="a second answer"
            ),
            (_S.AWAITING_APPROVAL, _APPROVED): move(
                _decide,
                (_S.AWAITING_ACK, "yes / agent MAC, granted scopes"),
                (_S.REFUSED, "no, or grants too much / Declined"),
            ),
            (_S.AWAITING_APPROVAL, _REFUSED): move(_give_up, _S.REFUSED, note="declined"),
            (_S.AWAITING_APPROVAL, _ACK): bug("the customer has not decided"),
            (_S.AWAITING_APPROVAL, _NOTICE): bug("nothing was refused"),
            (_S.AWAITING_APPROVAL, _NOT_STARTED): bug("consent is not complete"),
            # AWAITING_ACK: the technician checks our MAC and answers empty.
            (_S.AWAITING_ACK, _CHALLENGE): bug("the challenge was answered"),
            (_S.AWAITING_ACK, _RESPONSE): move(_out_of_turn, _S.REFUSED, note="a second answer"),
            (_S.AWAITING_ACK, _APPROVED): bug("already approved"),
            (_S.AWAITING_ACK, _REFUSED): move(_give_up, _S.REFUSED, note="cancelled"),
            (_S.AWAITING_ACK, _ACK): move(
                _acknowledge,
                (_S.DONE, "empty / Consent"),
                (_S.REFUSED, "not empty"),
            ),
            (_S.AWAITING_ACK, _NOTICE): bug("nothing was refused"),
            (_S.AWAITING_ACK, _NOT_STARTED): bug("consent is not complete"),
            # DONE: consent complete; authentication succeeds.
            (_S.DONE, _CHALLENGE): bug("the handshake is complete"),
            (_S.DONE, _RESPONSE): stay(_late_answer, "raises MalformedMessage"),
            (_S.DONE, _APPROVED): bug("the handshake is complete"),
            (_S.DONE, _REFUSED): stay(_ignore, "late: no effect"),
            (_S.DONE, _ACK): stay(_done, "same Consent"),
            (_S.DONE, _NOTICE): bug("nothing was refused"),
            (_S.DONE, _NOT_STARTED): move(
                _cannot_start, _S.REFUSED, note="no transcript,\\nno session"
            ),
            # REFUSED: the refusal is decided; the notice is not yet given.
            (_S.REFUSED, _CHALLENGE): stay(_repeat, "raises the refusal"),
            (_S.REFUSED, _RESPONSE): stay(_repeat, "raises the refusal"),
            (_S.REFUSED, _APPROVED): stay(_repeat, "raises the refusal"),
            (_S.REFUSED, _REFUSED): stay(_ignore, "no effect"),
            (_S.REFUSED, _ACK): stay(_repeat, "raises the refusal"),
            (_S.REFUSED, _NOTICE): move(_give_notice, _S.CLOSED, note="/ notice"),
            (_S.REFUSED, _NOT_STARTED): stay(_ignore, "no effect"),
            # CLOSED: the notice was given; nothing more to say.
            (_S.CLOSED, _CHALLENGE): stay(_repeat, "raises the refusal"),
            (_S.CLOSED, _RESPONSE): stay(_repeat, "raises the refusal"),
            (_S.CLOSED, _APPROVED): stay(_repeat, "raises the refusal"),
            (_S.CLOSED, _REFUSED): stay(_ignore, "no effect"),
            (_S.CLOSED, _ACK): stay(_repeat, "raises the refusal"),
            (_S.CLOSED, _NOTICE): stay(_ignore, "None"),
            (_S.CLOSED, _NOT_STARTED): stay(_ignore, "no effect"),
        }
    )


__all__ = [
    "AgentHandshake",
    "AgentState",
    "TrustCheck",
    "trust_from_allowed_signers",
    "untrusted",
]
