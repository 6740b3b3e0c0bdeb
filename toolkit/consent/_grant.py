"""Consent by a grant: its messages, and the machine of each side.

A grant (toolkit.grants) is consent given in advance, in writing, by the
machine's owner: it stands in for the one-time code and the customer's yes.
The agent offers a fresh nonce in round 1 (beside its PAKE message, or
alone when it takes no code); the technician answers with the grant file
and an SSHSIG (namespace ``toolkit-consent``) over the nonce, the agent's
host key as the technician saw it, its own key, name, email, ticket, the
scopes asked and the grant's digest. That signature proves the technician
holds the key the grant names, on this connection (the nonce) to this agent
(the host key). There is no PAKE here, so nothing else authenticates the
agent: the technician must pin its host key before answering
(toolkit.transport.ssh), and the SSH connection protects the rest.

Formats (docs/consent.md, "Consent by a grant")::

    technician:     {"v":1,"type":"grant","grant":B64,"key":B64,"name":S,"email":S,
                     "ticket":S,"scopes":[S..],"sig":B64}
    agent, round 2: {"v":1,"type":"granted","granted":[S..],"use":N,"uses":M}
    agent, instead: {"v":1,"type":"refused","reason":"grant-refused","tries_left":0,
                     "detail":"<REFUSAL>: <sentence>"}

Like the code's machines, these do no I/O: the agent's checks of the grant
itself (its issuer, window, hosts, technician, ticket) and the use it spends
on disk are an :data:`Admit` callable given to the machine
(toolkit.grants.acceptance). A grant never costs the code a try.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from toolkit.consent._approval import Consent, GrantRecord, Scope, scope_names, scopes
from toolkit.consent._machine import Input, Machine, bug, move, stay, table
from toolkit.consent._messages import (
    GRANT_REFUSED,
    MAX_EMAIL,
    MAX_NAME,
    MAX_SIG_BYTES,
    MAX_TICKET,
    NONCE_LENGTH,
    GrantsChallenge,
    MessageError,
    Notice,
    PakeChallenge,
    _b64,
    _dump,
    _enc,
    _fields,
    _int,
    _load,
    _notice,
    _scopes,
    check_label,
    decode_challenge,
    technician_claims,
)
from toolkit.consent._notices import grant_notice_error, grant_refused, notice_error
from toolkit.consent._trust import CONSENT_NAMESPACE
from toolkit.consent.errors import (
    ConsentError,
    Declined,
    GrantsNotTaken,
    IdentityProofFailed,
    MalformedMessage,
    SessionNotStarted,
)
from toolkit.errors import SignatureError, UsageError
from toolkit.identity import sshsig
from toolkit.identity._wire import string
from toolkit.identity.keys import fingerprint

if TYPE_CHECKING:
    from toolkit.grants import Grant
    from toolkit.grants.ledger import Use
    from toolkit.identity.signer import Signer

#: The label of the technician's proof (SSH wire strings, signed in namespace toolkit-consent).
PROOF_LABEL = b"toolkit consent v1 grant"
#: A grant message carries the whole grant file (at most 48 KiB) in base64.
MAX_GRANT_MESSAGE_BYTES = 64 * 1024
MAX_GRANT_FILE_BYTES = 48 * 1024
#: Uses a grant may have (toolkit.grants: 1 to 100,000).
MAX_USES = 100_000


# --- messages ----------------------------------------------------------------


@dataclass(frozen=True)
class GrantAnswer:
    """Technician, round 1: the grant, who brings it, and the proof they hold its key."""

    grant: bytes  # the whole grant file
    key: bytes
    name: str
    email: str
    ticket: str
    scopes: frozenset[Scope]
    sig: bytes

    def encode(self) -> str:
        return _dump(
            {
                "type": "grant",
                "grant": _enc(self.grant),
                "key": _enc(self.key),
                "name": self.name,
                "email": self.email,
                "ticket": self.ticket,
                "scopes": scope_names(self.scopes),
                "sig": _enc(self.sig),
            }
        )


@dataclass(frozen=True)
class Granted:
    """Agent, round 2: the scopes the grant gives, and which of its uses this is."""

    granted: frozenset[Scope]
    use: int
    uses: int

    def encode(self) -> str:
        return _dump(
            {
                "type": "granted",
                "granted": scope_names(self.granted),
                "use": self.use,
                "uses": self.uses,
            }
        )


def is_grant_answer(text: object) -> bool:
    """Whether the technician's round-1 answer is meant as a grant (else: the code's answer).

    Only its type is looked at (:func:`decode_grant_answer` parses it strictly), so
    that a malformed grant is refused as a grant, never charged to the code as a try.
    """
    try:
        kind, _ = _load(text, ("grant", "response"), MAX_GRANT_MESSAGE_BYTES)
    except MessageError:
        return False
    return kind == "grant"


def decode_grant_answer(text: object) -> GrantAnswer:
    """The technician's round-1 answer with a grant (MessageError if it is not exactly one)."""
    _, obj = _load(text, ("grant",), MAX_GRANT_MESSAGE_BYTES)
    _fields(obj, "grant", "key", "name", "email", "ticket", "scopes", "sig")
    return GrantAnswer(
        grant=_b64(obj, "grant", limit=MAX_GRANT_FILE_BYTES),
        **technician_claims(obj),
        sig=_b64(obj, "sig", limit=MAX_SIG_BYTES),
    )


def decode_granted(text: object) -> Granted | Notice:
    """The agent's round-2 instruction after a grant."""
    kind, obj = _load(text, ("granted", "refused"))
    if kind == "refused":
        return _notice(obj)
    _fields(obj, "granted", "use", "uses")
    uses = _int(obj, "uses", 1, MAX_USES)
    return Granted(_scopes(obj, "granted"), _int(obj, "use", 1, uses), uses)


def proof(
    nonce: bytes,
    host_key: bytes,
    technician_key: bytes,
    name: str,
    email: str,
    ticket: str,
    requested: Iterable[Scope],
    grant_file: bytes,
) -> bytes:
    """What the technician signs: SSH wire strings, in this order (docs/consent.md)."""
    return b"".join(
        string(part)
        for part in (
            PROOF_LABEL,
            nonce,
            host_key,
            technician_key,
            name.encode("utf-8"),
            email.encode("utf-8"),
            ticket.encode("utf-8"),
            ",".join(scope_names(requested)).encode("ascii"),
            hashlib.sha256(grant_file).digest(),
        )
    )


# --- the agent's side ----------------------------------------------------------


@dataclass(frozen=True)
class GrantClaim:
    """What a technician brought and proved: the agent's checks of the grant decide on it."""

    grant: bytes = field(repr=False)  # the whole grant file
    key: bytes = field(repr=False)
    name: str
    email: str
    ticket: str
    requested: frozenset[Scope]
    nonce: bytes = field(repr=False)


@dataclass(frozen=True)
class Admission:
    """The agent's yes to a grant: the use it spent, the scopes the session gets."""

    grant: Grant
    issuer: str  # the principal the agent's trust matched
    use: int
    uses: int
    granted: frozenset[Scope]
    spent: Use | None = None  # the ledger's record of that use


#: The agent's checks of a grant and the use it spends (toolkit.grants.acceptance);
#: raises a ConsentError (GrantRefused with its reason) to refuse.
Admit = Callable[[GrantClaim], Admission]


class GrantAgentState(enum.Enum):
    READY = "ready"
    AWAITING_GRANT = "awaiting-grant"
    AWAITING_ACK = "awaiting-ack"
    DONE = "done"
    REFUSED = "refused"
    CLOSED = "closed"


_A = GrantAgentState
_CHALLENGE: Input[str] = Input("challenge")
_GRANT: Input[str] = Input("receive_grant")
_ACK: Input[Consent] = Input("receive_ack")
_REFUSED: Input[None] = Input("refused")
_NOTICE: Input[str | None] = Input("notice")
_NOT_STARTED: Input[None] = Input("not_started")


class AgentGrantHandshake(Machine[GrantAgentState]):
    """The agent's side of consent by a grant, for one keyboard-interactive attempt.

    ``host_key`` is the agent's own host key blob; ``admit`` checks the grant
    and spends a use (or raises a ConsentError). Inputs, in protocol order::

        challenge()            -> round-1 instruction when no code is offered
                                  (with a code, the PAKE challenge carries ``nonce``)
        receive_grant(text)    -> round-2 instruction        (-> AWAITING_ACK)
        receive_ack(text)      -> Consent                    (-> DONE: auth succeeds)
        refused()              the connection closed, or the code's answer came instead
        not_started()          after receive_ack: the session could not start
        notice()               after a refusal: the one notice to send, then None
    """

    State = GrantAgentState

    def __init__(self, host_key: bytes, admit: Admit, *, nonce: bytes | None = None) -> None:
        self._host_key = host_key
        self._admit = admit
        self.nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_LENGTH)
        if len(self.nonce) != NONCE_LENGTH:
            raise ValueError(f"a nonce has {NONCE_LENGTH} bytes")
        self._admission: Admission | None = None
        self._consent: Consent | None = None
        self._error: ConsentError | None = None
        self._state = GrantAgentState.READY

    @property
    def error(self) -> ConsentError | None:
        return self._error

    @property
    def admission(self) -> Admission | None:
        """The grant's yes, once it was given."""
        return self._admission

    @property
    def consent(self) -> Consent | None:
        """The consent the grant gave, once admitted (complete at ``receive_ack``)."""
        return self._consent

    # --- inputs ------------------------------------------------------------

    def challenge(self) -> str:
        return self._fire(_CHALLENGE)

    def receive_grant(self, text: str) -> str:
        return self._fire(_GRANT, text)

    def receive_ack(self, text: str) -> Consent:
        return self._fire(_ACK, text)

    def refused(self) -> None:
        self._fire(_REFUSED)

    def not_started(self) -> None:
        self._fire(_NOT_STARTED)

    def notice(self) -> str | None:
        return self._fire(_NOTICE)

    # --- actions -----------------------------------------------------------

    def _fail(self, error: ConsentError) -> NoReturn:
        self._error = error
        self._enter(GrantAgentState.REFUSED)
        raise error

    def _start(self) -> str:
        self._enter(GrantAgentState.AWAITING_GRANT)
        return GrantsChallenge(self.nonce).encode()

    def _same_challenge(self) -> str:
        return GrantsChallenge(self.nonce).encode()

    def _grant(self, text: str) -> str:
        # 1. Parse strictly. Nothing here costs the code a try: there is none at stake.
        try:
            msg = decode_grant_answer(text)
        except MessageError as exc:
            self._fail(MalformedMessage(f"A connection sent a malformed grant answer ({exc})."))
        # 2. The technician holds the key it names, on this connection, to this agent.
        signed = proof(
            self.nonce,
            self._host_key,
            msg.key,
            msg.name,
            msg.email,
            msg.ticket,
            msg.scopes,
            msg.grant,
        )
        try:
            sig = sshsig.SSHSig.from_bytes(msg.sig)
            if sig.public_key != msg.key:
                raise SignatureError("signed by a different key")
            sshsig.verify(sig, signed, CONSENT_NAMESPACE)
        except SignatureError:
            self._fail(
                IdentityProofFailed(
                    "A technician brought a grant, but its signature over the handshake does "
                    "not verify with the key it named (or it saw another host key than this "
                    f"agent's, {fingerprint(self._host_key)})."
                )
            )
        # 3. The grant itself, and a use of it spent on disk: the agent's checks.
        claim = GrantClaim(
            grant=msg.grant,
            key=msg.key,
            name=msg.name,
            email=msg.email,
            ticket=msg.ticket,
            requested=msg.scopes,
            nonce=self.nonce,
        )
        try:
            admission = self._admit(claim)
        except ConsentError as exc:
            self._fail(exc)
        except UsageError as exc:  # a grant file that is not a grant (GrantError)
            self._fail(grant_refused("forged", f"The grant is not a valid grant: {exc.message}"))
        self._admission = admission
        grant = admission.grant
        self._consent = Consent(
            name=msg.name,
            email=msg.email,
            key=msg.key,
            ticket=msg.ticket,
            requested=msg.scopes,
            granted=admission.granted,
            host_key=self._host_key,
            # Vouched for as that email only when the grant names a principal (check_grant
            # checked the trust file for it); a grant naming a key vouches for the key,
            # and the name and email beside it are the technician's own words.
            trusted=grant.technician_key is None,
            method="grant",
            grant=GrantRecord(
                text=msg.grant.decode("utf-8", "replace"),
                id=grant.id,
                sha256=hashlib.sha256(msg.grant).hexdigest(),
                issuer=grant.issuer,
                use=admission.use,
                uses=admission.uses,
                verdict=f"accepted by {admission.issuer}",
                grant=grant,
                spent=admission.spent,
            ),
        )
        self._enter(GrantAgentState.AWAITING_ACK)
        return Granted(admission.granted, admission.use, admission.uses).encode()

    def _acknowledge(self, text: str) -> Consent:
        if text != "":
            self._fail(MalformedMessage("The technician's final answer was not empty."))
        self._enter(GrantAgentState.DONE)
        return self._done()

    def _done(self, *_: object) -> Consent:
        assert self._consent is not None
        return self._consent

    def _give_up(self) -> None:
        self._error = Declined("The consent handshake was abandoned before it completed.")
        self._enter(GrantAgentState.REFUSED)

    def _cannot_start(self) -> None:
        self._error = SessionNotStarted("The customer's side could not start the session.")
        self._enter(GrantAgentState.REFUSED)

    def _give_notice(self) -> str:
        error = self._error
        assert error is not None
        self._enter(GrantAgentState.CLOSED)
        from toolkit.grants.check import GrantRefused

        if isinstance(error, GrantRefused):
            return Notice(GRANT_REFUSED, 0, error.detail.strip()).encode()
        return Notice(type(error).reason, 0).encode()

    def _repeat(self, *_: object) -> NoReturn:
        assert self._error is not None
        raise self._error.with_traceback(None)

    def _late(self, *_: object) -> NoReturn:
        raise MalformedMessage("The technician's side answered after the handshake completed.")

    def _out_of_turn(self, *_: object) -> NoReturn:
        self._fail(MalformedMessage("The technician's side answered out of turn."))

    def _ignore(self, *_: object) -> None:
        return None

    INPUTS = (_CHALLENGE, _GRANT, _ACK, _REFUSED, _NOTICE, _NOT_STARTED)
    INITIAL = GrantAgentState.READY
    TRANSITIONS = table(
        {
            (_A.READY, _CHALLENGE): move(_start, _A.AWAITING_GRANT, note="/ nonce"),
            (_A.READY, _GRANT): bug("challenge() comes first"),
            (_A.READY, _ACK): bug("challenge() comes first"),
            (_A.READY, _REFUSED): move(_give_up, _A.REFUSED, note="abandoned"),
            (_A.READY, _NOTICE): bug("nothing was refused"),
            (_A.READY, _NOT_STARTED): bug("consent is not complete"),
            (_A.AWAITING_GRANT, _CHALLENGE): stay(_same_challenge, "same challenge again"),
            (_A.AWAITING_GRANT, _GRANT): move(
                _grant,
                (_A.AWAITING_ACK, "proof ok, grant admitted,\\na use spent / granted"),
                (_A.REFUSED, "malformed, bad proof,\\nor the grant refused"),
            ),
            (_A.AWAITING_GRANT, _ACK): bug("round 1 is not answered yet"),
            (_A.AWAITING_GRANT, _REFUSED): move(_give_up, _A.REFUSED, note="abandoned"),
            (_A.AWAITING_GRANT, _NOTICE): bug("nothing was refused"),
            (_A.AWAITING_GRANT, _NOT_STARTED): bug("consent is not complete"),
            (_A.AWAITING_ACK, _CHALLENGE): bug("the challenge was answered"),
            (_A.AWAITING_ACK, _GRANT): move(_out_of_turn, _A.REFUSED, note="a second answer"),
            (_A.AWAITING_ACK, _ACK): move(
                _acknowledge, (_A.DONE, "empty / Consent"), (_A.REFUSED, "not empty")
            ),
            (_A.AWAITING_ACK, _REFUSED): move(_give_up, _A.REFUSED, note="cancelled"),
            (_A.AWAITING_ACK, _NOTICE): bug("nothing was refused"),
            (_A.AWAITING_ACK, _NOT_STARTED): bug("consent is not complete"),
            (_A.DONE, _CHALLENGE): bug("the handshake is complete"),
            (_A.DONE, _GRANT): stay(_late, "raises MalformedMessage"),
            (_A.DONE, _ACK): stay(_done, "same Consent"),
            (_A.DONE, _REFUSED): stay(_ignore, "late: no effect"),
            (_A.DONE, _NOTICE): bug("nothing was refused"),
            (_A.DONE, _NOT_STARTED): move(_cannot_start, _A.REFUSED, note="no transcript"),
            (_A.REFUSED, _CHALLENGE): stay(_repeat, "raises the refusal"),
            (_A.REFUSED, _GRANT): stay(_repeat, "raises the refusal"),
            (_A.REFUSED, _ACK): stay(_repeat, "raises the refusal"),
            (_A.REFUSED, _REFUSED): stay(_ignore, "no effect"),
            (_A.REFUSED, _NOTICE): move(_give_notice, _A.CLOSED, note="/ notice"),
            (_A.REFUSED, _NOT_STARTED): stay(_ignore, "no effect"),
            (_A.CLOSED, _CHALLENGE): stay(_repeat, "raises the refusal"),
            (_A.CLOSED, _GRANT): stay(_repeat, "raises the refusal"),
            (_A.CLOSED, _ACK): stay(_repeat, "raises the refusal"),
            (_A.CLOSED, _REFUSED): stay(_ignore, "no effect"),
            (_A.CLOSED, _NOTICE): stay(_ignore, "None"),
            (_A.CLOSED, _NOT_STARTED): stay(_ignore, "no effect"),
        }
    )


# --- the technician's side -----------------------------------------------------


class GrantTechnicianState(enum.Enum):
    START = "start"
    RESPONDED = "responded"
    DONE = "done"
    REFUSED = "refused"


_T = GrantTechnicianState
_T_CHALLENGE: Input[str] = Input("respond")
_T_FINISH: Input[Consent] = Input("finish")


class TechnicianGrantHandshake(Machine[GrantTechnicianState]):
    """The technician's side of consent by a grant.

    ``host_key`` is the agent's host key as this side received it, already
    checked against its pin (the caller's job: nothing else authenticates the
    agent here). Inputs::

        respond(text) -> str        round-1 instruction in, the grant answer out
        finish(text) -> Consent     round-2 instruction; answer "" only if it returns
    """

    State = GrantTechnicianState

    def __init__(
        self,
        signer: Signer,
        host_key: bytes,
        grant: Grant,
        *,
        name: str,
        email: str,
        ticket: str,
        scopes: Iterable[Scope | str],
    ) -> None:
        try:
            self._name = check_label(name, "technician name", MAX_NAME)
            self._email = check_label(email, "technician email", MAX_EMAIL, email=True)
            self._ticket = check_label(ticket, "ticket", MAX_TICKET)
            self._scopes = scopes_of(scopes)
        except (MessageError, ValueError) as exc:
            raise UsageError(f"Cannot ask for consent: {exc}.") from None
        if not host_key:
            raise ValueError("the agent's host key is needed")
        self._signer = signer
        self._host_key = host_key
        self._grant = grant
        self._file = grant.to_bytes()
        self._response: str | None = None
        self._consent: Consent | None = None
        self._error: ConsentError | None = None
        self._state = GrantTechnicianState.START

    @property
    def error(self) -> ConsentError | None:
        return self._error

    def respond(self, text: str) -> str:
        return self._fire(_T_CHALLENGE, text)

    def finish(self, text: str) -> Consent:
        return self._fire(_T_FINISH, text)

    def _fail(self, error: ConsentError) -> NoReturn:
        self._error = error
        self._enter(GrantTechnicianState.REFUSED)
        raise error

    def _malformed(self, exc: MessageError) -> NoReturn:
        self._fail(
            MalformedMessage(f"The customer's agent sent a malformed consent message ({exc}).")
        )

    def _notice(self, notice: Notice) -> NoReturn:
        if notice.reason == GRANT_REFUSED:
            self._fail(grant_notice_error(notice))
        self._fail(notice_error(notice, self._host_key))

    def _respond(self, text: str) -> str:
        try:
            msg = decode_challenge(text)
        except MessageError as exc:
            self._malformed(exc)
        if isinstance(msg, Notice):
            self._notice(msg)
        nonce = msg.nonce if isinstance(msg, (PakeChallenge, GrantsChallenge)) else None
        if nonce is None:
            self._fail(
                GrantsNotTaken(
                    "The customer's agent does not take grants: it was not started with "
                    "--accept-grants-from."
                )
            )
        signed = proof(
            nonce,
            self._host_key,
            self._signer.public_blob,
            self._name,
            self._email,
            self._ticket,
            self._scopes,
            self._file,
        )
        sig = sshsig.sign(self._signer, signed, CONSENT_NAMESPACE).to_bytes()
        self._response = GrantAnswer(
            grant=self._file,
            key=self._signer.public_blob,
            name=self._name,
            email=self._email,
            ticket=self._ticket,
            scopes=self._scopes,
            sig=sig,
        ).encode()
        self._enter(GrantTechnicianState.RESPONDED)
        return self._response

    def _same_response(self, *_: object) -> str:
        assert self._response is not None
        return self._response

    def _out_of_turn(self, *_: object) -> NoReturn:
        self._fail(MalformedMessage("The customer's agent sent its first message twice."))

    def _finish(self, text: str) -> Consent:
        try:
            msg = decode_granted(text)
        except MessageError as exc:
            self._malformed(exc)
        if isinstance(msg, Notice):
            self._notice(msg)
        if not msg.granted <= self._scopes:
            self._fail(MalformedMessage("The customer's agent granted scopes nobody asked for."))
        grant = self._grant
        self._consent = Consent(
            name=self._name,
            email=self._email,
            key=self._signer.public_blob,
            ticket=self._ticket,
            requested=self._scopes,
            granted=msg.granted,
            host_key=self._host_key,
            trusted=None,
            method="grant",
            grant=GrantRecord(
                text=self._file.decode("utf-8", "replace"),
                id=grant.id,
                sha256=hashlib.sha256(self._file).hexdigest(),
                issuer=grant.issuer,
                use=msg.use,
                uses=msg.uses,
                verdict=f"accepted by the agent {fingerprint(self._host_key)} "
                f"(issued by {grant.issuer})",
                grant=grant,
            ),
        )
        self._enter(GrantTechnicianState.DONE)
        return self._consent

    def _done(self, *_: object) -> Consent:
        assert self._consent is not None
        return self._consent

    def _after_done(self, text: str) -> Consent:
        # After our empty answer the agent starts the session; if it cannot, it says so.
        try:
            msg = decode_granted(text)
        except MessageError:
            return self._done()
        if isinstance(msg, Notice):
            self._notice(msg)
        return self._done()

    def _repeat(self, *_: object) -> NoReturn:
        assert self._error is not None
        raise self._error.with_traceback(None)

    INPUTS = (_T_CHALLENGE, _T_FINISH)
    INITIAL = GrantTechnicianState.START
    TRANSITIONS = table(
        {
            (_T.START, _T_CHALLENGE): move(
                _respond,
                (_T.RESPONDED, "nonce / grant and proof"),
                (_T.REFUSED, "notice, malformed,\\nor no nonce (GrantsNotTaken)"),
            ),
            (_T.START, _T_FINISH): bug("round 1 comes first"),
            (_T.RESPONDED, _T_CHALLENGE): move(_out_of_turn, _T.REFUSED, note="round 1 again"),
            (_T.RESPONDED, _T_FINISH): move(
                _finish,
                (_T.DONE, "granted / Consent"),
                (_T.REFUSED, "notice (GrantRefused),\\nmalformed or too much granted"),
            ),
            (_T.DONE, _T_CHALLENGE): stay(_same_response, "same answer"),
            (_T.DONE, _T_FINISH): move(
                _after_done,
                (_T.DONE, "same Consent"),
                (_T.REFUSED, "a notice: the session\\ncould not start"),
            ),
            (_T.REFUSED, _T_CHALLENGE): stay(_repeat, "raises the refusal"),
            (_T.REFUSED, _T_FINISH): stay(_repeat, "raises the refusal"),
        }
    )


def scopes_of(values: Iterable[Scope | str]) -> frozenset[Scope]:
    out = scopes(values)
    if not out:
        raise ValueError("ask for at least one scope")
    return out


__all__ = [
    "MAX_GRANT_MESSAGE_BYTES",
    "PROOF_LABEL",
    "Admission",
    "Admit",
    "AgentGrantHandshake",
    "GrantAgentState",
    "GrantAnswer",
    "GrantClaim",
    "GrantTechnicianState",
    "Granted",
    "TechnicianGrantHandshake",
    "decode_grant_answer",
    "decode_granted",
    "is_grant_answer",
    "proof",
]
