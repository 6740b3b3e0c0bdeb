"""The technician's side of the consent handshake, for ``kbdint_challenge_received``.

It wires the PAKE (side A), the confirmation (which speaks first) and the
technician's signature. The code may be known before the agent's first
challenge arrives (``--code``) or typed after it (the prompt appears when
the challenge does): the PAKE machine orders the two.

Each method is one input; the table at the bottom of the class names every
(state, input) pair. In REFUSED, inputs that need an answer raise the same
refusal again; a second code is ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, NoReturn

from toolkit.consent._approval import Consent, Scope, scopes
from toolkit.consent._code import parse_code
from toolkit.consent._confirm import (
    PURPOSE_CONFIRM_CODE,
    PURPOSE_PREVIOUS_CODE,
    TechnicianConfirmation,
    Transcript,
    code_mac,
    sign_transcript,
)
from toolkit.consent._machine import Input, Machine, bug, move, stay, table
from toolkit.consent._messages import (
    MAX_EMAIL,
    MAX_NAME,
    MAX_TICKET,
    GrantsChallenge,
    MessageError,
    Notice,
    Response,
    check_label,
    decode_challenge,
    decode_confirm,
)
from toolkit.consent._notices import notice_error
from toolkit.consent._outputs import Outputs
from toolkit.consent._pake import Pake, Side
from toolkit.consent.errors import (
    ConfirmationFailed,
    ConsentError,
    GrantsOnly,
    MalformedMessage,
)
from toolkit.errors import UsageError
from toolkit.identity.keys import fingerprint
from toolkit.secrets import Secret

if TYPE_CHECKING:
    from toolkit.identity.signer import Signer


class TechnicianState(enum.Enum):
    START = "start"
    HAVE_CODE = "have-code"
    HAVE_CHALLENGE = "have-challenge"
    READY = "ready"
    RESPONDED = "responded"
    DONE = "done"
    REFUSED = "refused"


_S = TechnicianState
_CODE: Input[None] = Input("provide_code")
_CHALLENGE: Input[None] = Input("receive_challenge")
_RESPONSE: Input[str] = Input("response")
_FINISH: Input[Consent] = Input("finish")


class TechnicianHandshake(Machine[TechnicianState]):
    """The technician's handshake with one agent.

    ``signer`` holds the technician's identity key (its public blob is sent
    and signs the transcript); ``host_key`` is the agent's SSH host key blob
    exactly as this side received it in the key exchange; ``name``,
    ``email``, ``ticket`` and ``scopes`` are what the customer will be
    shown (UsageError if they could not be shown safely).

    Inputs::

        provide_code(code)          the code, before or after the challenge
        receive_challenge(text)     round-1 instruction from the agent
        response() -> str           round-1 answer (needs both of the above)
        respond(text) -> str        receive_challenge + response, in one call
        finish(text) -> Consent     round-2 instruction; answer "" only if it returns

    Refusals raise a ConsentError subclass after entering REFUSED:
    ConfirmationFailed when the agent's MAC is wrong (possible
    man-in-the-middle), or the error the agent's notice names.
    """

    State = TechnicianState

    def __init__(
        self,
        signer: Signer,
        host_key: bytes,
        *,
        name: str,
        email: str,
        ticket: str,
        scopes: Iterable[Scope | str],
        code: Secret | None = None,
    ) -> None:
        try:
            self._name = check_label(name, "technician name", MAX_NAME)
            self._email = check_label(email, "technician email", MAX_EMAIL, email=True)
            self._ticket = check_label(ticket, "ticket", MAX_TICKET)
            self._scopes = _scopes_of(scopes)
        except (MessageError, ValueError) as exc:
            raise UsageError(f"Cannot ask for consent: {exc}.") from None
        if not host_key:
            raise ValueError("the agent's host key is needed")
        self._signer = signer
        self._host_key = host_key
        self._out = Outputs()
        self._pake = Pake(Side.TECHNICIAN, self._out)
        self._agent_pake: bytes | None = None
        self._agent_previous: bytes | None = None
        self._code: Secret | None = None  # kept for the previous-code PAKE, until round 1
        self._confirm: TechnicianConfirmation | None = None
        self._response: str | None = None
        self._consent: Consent | None = None
        self._error: ConsentError | None = None
        self._state = TechnicianState.START
        if code is not None:
            self.provide_code(code)

    @property
    def error(self) -> ConsentError | None:
        return self._error

    @property
    def needs_code(self) -> bool:
        """True while the code is still unknown (prompt for it, then ``provide_code``)."""
        return self._state in (TechnicianState.START, TechnicianState.HAVE_CHALLENGE)

    # --- inputs ------------------------------------------------------------

    def provide_code(self, code: Secret) -> None:
        """The code the technician typed (CodeFormatError if it is not 9 digits)."""
        self._fire(_CODE, parse_code(code.reveal()))

    def receive_challenge(self, text: str) -> None:
        """The agent's round-1 instruction."""
        self._fire(_CHALLENGE, text)

    def response(self) -> str:
        """The round-1 answer: one compact JSON string."""
        return self._fire(_RESPONSE)

    def respond(self, text: str) -> str:
        """Round 1 in one call: the code must be known already."""
        self.receive_challenge(text)
        return self.response()

    def finish(self, text: str) -> Consent:
        """The agent's round-2 instruction; returns the consent, with the scopes granted."""
        return self._fire(_FINISH, text)

    # --- actions -----------------------------------------------------------

    def _fail(self, error: ConsentError) -> NoReturn:
        self._error = error
        self._enter(TechnicianState.REFUSED)
        raise error

    def _code_first(self, code: Secret) -> None:
        self._code = code
        self._pake.got_code(code)
        self._enter(TechnicianState.HAVE_CODE)

    def _code_second(self, code: Secret) -> None:
        self._code = code
        self._pake.got_code(code)
        self._keyed()

    def _challenge(self, text: str) -> None:
        try:
            msg = decode_challenge(text)
        except MessageError as exc:
            self._fail(
                MalformedMessage(f"The customer's agent sent a malformed consent message ({exc}).")
            )
        if isinstance(msg, Notice):
            self._fail(notice_error(msg, self._host_key))
        if isinstance(msg, GrantsChallenge):
            self._fail(
                GrantsOnly(
                    "The customer's agent takes no code now: it takes grants only, or the "
                    "code it showed can no longer be used (ask the customer for a new one)."
                )
            )
        self._agent_pake = msg.pake
        self._agent_previous = msg.previous
        self._pake.got_peer_message(msg.pake)
        if self._state is TechnicianState.START:
            self._enter(TechnicianState.HAVE_CHALLENGE)
        else:
            self._keyed()

    def _keyed(self) -> None:
        if self._out.key is None:
            self._fail(MalformedMessage("The customer's agent sent an invalid SPAKE2 message."))
        self._enter(TechnicianState.READY)

    def _respond(self) -> str:
        key, ours, theirs = self._out.key, self._out.message, self._agent_pake
        assert key is not None and ours is not None and theirs is not None
        transcript = Transcript(
            technician_pake=ours,
            agent_pake=theirs,
            host_key=self._host_key,
            technician_key=self._signer.public_blob,
            name=self._name,
            email=self._email,
            ticket=self._ticket,
            requested=self._scopes,
        )
        sig = sign_transcript(self._signer, transcript)  # may raise IdentityError: state stays
        previous = self._previous_answer()
        self._confirm = TechnicianConfirmation(key, transcript, self._out)
        mac = self._confirm.send()
        self._response = Response(
            pake=ours,
            key=transcript.technician_key,
            name=self._name,
            email=self._email,
            ticket=self._ticket,
            scopes=self._scopes,
            code_mac=code_mac(key, ours, theirs, PURPOSE_CONFIRM_CODE),
            mac=mac,
            sig=sig,
            previous=previous,
        ).encode()
        self._code = None
        self._enter(TechnicianState.RESPONDED)
        return self._response

    def _previous_answer(self) -> tuple[bytes, bytes] | None:
        """SPAKE2 with the same code against the agent's previous-code message, if it sent one.

        If the typed code is the one the current code replaced, the agent can
        tell, and says so instead of counting a wrong try.
        """
        theirs, code = self._agent_previous, self._code
        if theirs is None:
            return None
        assert code is not None
        out = Outputs()
        pake = Pake(Side.TECHNICIAN, out)
        pake.got_code(code)
        pake.got_peer_message(theirs)
        if out.key is None or out.message is None:
            self._fail(MalformedMessage("The customer's agent sent an invalid SPAKE2 message."))
        return out.message, code_mac(out.key, out.message, theirs, PURPOSE_PREVIOUS_CODE)

    def _same_response(self) -> str:
        assert self._response is not None
        return self._response

    def _out_of_turn(self, *_: object) -> NoReturn:
        self._fail(MalformedMessage("The customer's agent sent its first message twice."))

    def _finish(self, text: str) -> Consent:
        assert self._confirm is not None
        try:
            msg = decode_confirm(text)
        except MessageError as exc:
            self._fail(
                MalformedMessage(f"The customer's agent sent a malformed consent message ({exc}).")
            )
        if isinstance(msg, Notice):
            self._fail(notice_error(msg, self._host_key))
        self._confirm.check(msg.mac, msg.granted)
        if not self._out.verdict:
            self._fail(
                ConfirmationFailed(
                    "The customer's agent did not confirm the handshake: whoever answered "
                    "does not hold the same key, or saw a different host key than this side "
                    f"did ({fingerprint(self._host_key)}). Compare it with the host key "
                    "toolkit share shows on the customer's screen."
                )
            )
        if not msg.granted <= self._scopes:
            self._fail(MalformedMessage("The customer's agent granted scopes nobody asked for."))
        transcript = self._confirm.transcript
        self._consent = Consent(
            name=self._name,
            email=self._email,
            key=transcript.technician_key,
            ticket=self._ticket,
            requested=self._scopes,
            granted=msg.granted,
            host_key=self._host_key,
            trusted=None,
        )
        self._enter(TechnicianState.DONE)
        return self._consent

    def _done(self, *_: object) -> Consent:
        assert self._consent is not None
        return self._consent

    def _after_done(self, text: str) -> Consent:
        # After our empty answer the agent starts the session; if it cannot, it says
        # so in one more challenge, a notice.
        try:
            msg = decode_confirm(text)
        except MessageError:
            return self._done()
        if isinstance(msg, Notice):
            self._fail(notice_error(msg, self._host_key))
        return self._done()

    def _repeat(self, *_: object) -> NoReturn:
        assert self._error is not None
        raise self._error.with_traceback(None)

    def _ignore(self, *_: object) -> None:
        return None

    INPUTS = (_CODE, _CHALLENGE, _RESPONSE, _FINISH)
    INITIAL = TechnicianState.START
    TRANSITIONS = table(
        {
            (_S.START, _CODE): move(_code_first, _S.HAVE_CODE, note="start SPAKE2"),
            (_S.START, _CHALLENGE): move(
                _challenge,
                (_S.HAVE_CHALLENGE, "keep the agent's PAKE message"),
                (_S.REFUSED, "notice or malformed"),
            ),
            (_S.START, _RESPONSE): bug("the challenge and the code come first"),
            (_S.START, _FINISH): bug("round 1 comes first"),
            (_S.HAVE_CODE, _CODE): stay(_ignore, "first code counts"),
            (_S.HAVE_CODE, _CHALLENGE): move(
                _challenge,
                (_S.READY, "SPAKE2 key"),
                (_S.REFUSED, "notice, malformed or bad PAKE message"),
            ),
            (_S.HAVE_CODE, _RESPONSE): bug("the challenge comes first"),
            (_S.HAVE_CODE, _FINISH): bug("round 1 comes first"),
            (_S.HAVE_CHALLENGE, _CODE): move(
                _code_second,
                (_S.READY, "SPAKE2 key"),
                (_S.REFUSED, "bad PAKE message"),
            ),
            (_S.HAVE_CHALLENGE, _CHALLENGE): stay(_ignore, "first challenge counts"),
            (_S.HAVE_CHALLENGE, _RESPONSE): bug("the code is needed first"),
            (_S.HAVE_CHALLENGE, _FINISH): bug("round 1 comes first"),
            (_S.READY, _CODE): stay(_ignore, "first code counts"),
            (_S.READY, _CHALLENGE): stay(_ignore, "first challenge counts"),
            (_S.READY, _RESPONSE): move(_respond, _S.RESPONDED, note="/ answer: MAC and signature"),
            (_S.READY, _FINISH): bug("round 1 is not answered yet"),
            (_S.RESPONDED, _CODE): stay(_ignore, "late"),
            (_S.RESPONDED, _CHALLENGE): move(_out_of_turn, _S.REFUSED, note="round 1 again"),
            (_S.RESPONDED, _RESPONSE): stay(_same_response, "same answer"),
            (_S.RESPONDED, _FINISH): move(
                _finish,
                (_S.DONE, "agent MAC ok / Consent"),
                (_S.REFUSED, "notice, malformed,\\nor MAC mismatch (ConfirmationFailed)"),
            ),
            (_S.DONE, _CODE): stay(_ignore, "late"),
            (_S.DONE, _CHALLENGE): stay(_ignore, "late"),
            (_S.DONE, _RESPONSE): stay(_same_response, "same answer"),
            (_S.DONE, _FINISH): move(
                _after_done,
                (_S.DONE, "same Consent"),
                (_S.REFUSED, "a notice: the session\\ncould not start"),
            ),
            (_S.REFUSED, _CODE): stay(_ignore, "late"),
            (_S.REFUSED, _CHALLENGE): stay(_repeat, "raises the refusal"),
            (_S.REFUSED, _RESPONSE): stay(_repeat, "raises the refusal"),
            (_S.REFUSED, _FINISH): stay(_repeat, "raises the refusal"),
        }
    )


def _scopes_of(values: Iterable[Scope | str]) -> frozenset[Scope]:
    out = scopes(values)
    if not out:
        raise ValueError("ask for at least one scope")
    return out


__all__ = ["TechnicianHandshake", "TechnicianState", "notice_error"]
