"""Key confirmation: each side proves it holds the same SPAKE2 key and saw the same things.

Both sides build the same canonical :class:`Transcript`: both PAKE messages,
the agent's SSH host key *as that side saw it*, the technician's public key,
the technician's name, email and ticket, and the requested scopes. Each side
MACs it with its own sub-key and direction label; the agent's MAC also covers
the scopes it grants. A man-in-the-middle that shows the technician its own
host key, or swaps the technician's key, makes the two transcripts differ,
and the MACs fail on both sides.

The technician speaks first. The agent checks the technician's MAC before
it will produce its own (:class:`AgentConfirmation` refuses otherwise): an
agent MAC sent to someone who has not proved the code would let them test
every code offline. The key stays unverified until the peer's MAC checks out.

Beside it, the technician sends a *code MAC* over the two PAKE messages
alone (:func:`code_mac`): it proves the code and nothing else, so that when
the full MAC fails the agent can tell a wrong code (a guess: a try) from a
right code over a connection whose host key or fields differ (someone in the
middle: the customer is told so). And when the agent also offers a PAKE keyed
with the code the current one replaced, a MAC of the same kind over that
exchange (purpose ``previous code``) lets it tell an old code from a wrong one.

The technician also signs the transcript with its identity key (SSHSIG,
namespace ``toolkit-consent``), so the customer approves the key that will
actually sign the session, not just someone who knows the code.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from toolkit.consent._approval import Scope, scope_names
from toolkit.consent._machine import Input, Machine, bug, move, stay, table
from toolkit.consent._pake import PakeKey
from toolkit.consent._trust import CONSENT_NAMESPACE
from toolkit.consent.errors import HandshakeOutOfOrder, IdentityProofFailed
from toolkit.errors import SignatureError
from toolkit.identity import sshsig
from toolkit.identity._wire import string

if TYPE_CHECKING:
    from toolkit.identity.signer import Signer

TRANSCRIPT_LABEL = b"toolkit consent v1 transcript"
PURPOSE_CONFIRM_TECHNICIAN = b"toolkit consent v1 confirm technician"
PURPOSE_CONFIRM_AGENT = b"toolkit consent v1 confirm agent"
PURPOSE_CONFIRM_CODE = b"toolkit consent v1 confirm code"
PURPOSE_PREVIOUS_CODE = b"toolkit consent v1 previous code"
CODE_LABEL = b"toolkit consent v1 code"
DIRECTION_TECHNICIAN = b"technician"
DIRECTION_AGENT = b"agent"
MAC_LENGTH = 32


def _scope_bytes(values: Iterable[Scope]) -> bytes:
    return ",".join(scope_names(values)).encode("ascii")


@dataclass(frozen=True)
class Transcript:
    """What both sides must have seen alike. ``to_bytes`` is the canonical form."""

    technician_pake: bytes
    agent_pake: bytes
    host_key: bytes
    technician_key: bytes
    name: str
    email: str
    ticket: str
    requested: frozenset[Scope]

    def to_bytes(self) -> bytes:
        """SSH wire strings, in this order, so that no two transcripts encode alike."""
        return b"".join(
            string(part)
            for part in (
                TRANSCRIPT_LABEL,
                self.technician_pake,
                self.agent_pake,
                self.host_key,
                self.technician_key,
                self.name.encode("utf-8"),
                self.email.encode("utf-8"),
                self.ticket.encode("utf-8"),
                _scope_bytes(self.requested),
            )
        )


def technician_mac(key: PakeKey, transcript: Transcript) -> bytes:
    """HMAC-SHA256(K_technician, transcript || "technician" || "")."""
    data = transcript.to_bytes() + string(DIRECTION_TECHNICIAN) + string(b"")
    return hmac.new(key.derive(PURPOSE_CONFIRM_TECHNICIAN), data, hashlib.sha256).digest()


def agent_mac(key: PakeKey, transcript: Transcript, granted: frozenset[Scope]) -> bytes:
    """HMAC-SHA256(K_agent, transcript || "agent" || granted scopes)."""
    data = transcript.to_bytes() + string(DIRECTION_AGENT) + string(_scope_bytes(granted))
    return hmac.new(key.derive(PURPOSE_CONFIRM_AGENT), data, hashlib.sha256).digest()


def code_mac(key: PakeKey, technician_pake: bytes, agent_pake: bytes, purpose: bytes) -> bytes:
    """HMAC-SHA256(HKDF(K, purpose), "toolkit consent v1 code" || X_A || X_B).

    Proves only that the sender ran SPAKE2 with the same code; ``purpose`` is
    :data:`PURPOSE_CONFIRM_CODE` for the current code and
    :data:`PURPOSE_PREVIOUS_CODE` for the code it replaced.
    """
    data = string(CODE_LABEL) + string(technician_pake) + string(agent_pake)
    return hmac.new(key.derive(purpose), data, hashlib.sha256).digest()


def same_mac(expected: bytes, mac: bytes) -> bool:
    """A constant-time comparison."""
    return hmac.compare_digest(expected, mac)


def sign_transcript(signer: Signer, transcript: Transcript) -> bytes:
    """The technician's SSHSIG blob over the transcript (namespace toolkit-consent)."""
    return sshsig.sign(signer, transcript.to_bytes(), CONSENT_NAMESPACE).to_bytes()


def verify_transcript_signature(blob: bytes, transcript: Transcript) -> None:
    """Raise IdentityProofFailed unless ``blob`` is the technician key's signature."""
    try:
        sig = sshsig.SSHSig.from_bytes(blob)
        if sig.public_key != transcript.technician_key:
            raise SignatureError("signed by a different key")
        sshsig.verify(sig, transcript.to_bytes(), CONSENT_NAMESPACE)
    except SignatureError:
        raise IdentityProofFailed(
            "The technician's signature over the handshake does not verify with the key it named."
        ) from None


class ConfirmListener(Protocol):
    def confirmed(self) -> None:
        """The peer's MAC checks out: the key and the transcript are verified."""
        ...

    def mismatch(self) -> None:
        """The peer's MAC is wrong: wrong code, or the two sides saw different things."""
        ...


class ConfirmState(enum.Enum):
    UNVERIFIED = "unverified"
    SENT = "sent"
    VERIFIED = "verified"
    FAILED = "failed"


_SEND: Input[bytes] = Input("send")
_CHECK: Input[None] = Input("check")


class _Confirmation(Machine[ConfirmState], abstract=True):
    State = ConfirmState
    _VERIFIED: frozenset[ConfirmState] = frozenset()

    def __init__(self, key: PakeKey, transcript: Transcript, listener: ConfirmListener) -> None:
        self._key = key
        self.transcript = transcript
        self._listener = listener
        self._sent: bytes | None = None
        self._state = ConfirmState.UNVERIFIED

    def verified_key(self) -> PakeKey:
        """The shared key, only once the peer has proved it holds the same one."""
        if self._state not in self._VERIFIED:
            raise HandshakeOutOfOrder("the key is not verified")
        return self._key

    def _verify(self, expected: bytes, mac: bytes) -> None:
        if isinstance(mac, bytes) and hmac.compare_digest(expected, mac):
            self._enter(ConfirmState.VERIFIED)
            self._listener.confirmed()
        else:
            self._enter(ConfirmState.FAILED)
            self._listener.mismatch()

    def _fail(self, *_: object) -> None:
        self._enter(ConfirmState.FAILED)
        self._listener.mismatch()

    def _resend(self, *_: object) -> bytes:
        if self._sent is None:  # pragma: no cover - rows only allow this after a send
            raise HandshakeOutOfOrder("nothing was sent")
        return self._sent

    def _ignore(self, *_: object) -> None:
        return None


class TechnicianConfirmation(_Confirmation):
    """The technician's side: send our MAC first, then check the agent's."""

    _VERIFIED = frozenset({ConfirmState.VERIFIED})

    def send(self) -> bytes:
        return self._fire(_SEND)

    def check(self, mac: bytes, granted: frozenset[Scope]) -> None:
        self._fire(_CHECK, mac, granted)

    def _send(self) -> bytes:
        self._sent = technician_mac(self._key, self.transcript)
        self._enter(ConfirmState.SENT)
        return self._sent

    def _check(self, mac: bytes, granted: frozenset[Scope]) -> None:
        self._verify(agent_mac(self._key, self.transcript, granted), mac)

    INPUTS = (_SEND, _CHECK)
    INITIAL = ConfirmState.UNVERIFIED
    TRANSITIONS = table(
        {
            (ConfirmState.UNVERIFIED, _SEND): move(_send, ConfirmState.SENT, note="/ our MAC"),
            (ConfirmState.UNVERIFIED, _CHECK): move(
                _Confirmation._fail, ConfirmState.FAILED, note="MAC before ours / mismatch"
            ),
            (ConfirmState.SENT, _SEND): stay(_Confirmation._resend, "same MAC again"),
            (ConfirmState.SENT, _CHECK): move(
                _check,
                (ConfirmState.VERIFIED, "MAC ok / confirmed"),
                (ConfirmState.FAILED, "MAC wrong / mismatch"),
            ),
            (ConfirmState.VERIFIED, _SEND): stay(_Confirmation._resend, "same MAC again"),
            (ConfirmState.VERIFIED, _CHECK): stay(_Confirmation._ignore, "checked once"),
            (ConfirmState.FAILED, _SEND): bug("no MAC after a failed confirmation"),
            (ConfirmState.FAILED, _CHECK): stay(_Confirmation._ignore, "late"),
        }
    )


class AgentConfirmation(_Confirmation):
    """The agent's side: check the technician's MAC, and only then send ours."""

    _VERIFIED = frozenset({ConfirmState.VERIFIED, ConfirmState.SENT})

    def check(self, mac: bytes) -> None:
        self._fire(_CHECK, mac)

    def send(self, granted: frozenset[Scope]) -> bytes:
        return self._fire(_SEND, granted)

    def _check(self, mac: bytes) -> None:
        self._verify(technician_mac(self._key, self.transcript), mac)

    def _send(self, granted: frozenset[Scope]) -> bytes:
        self._sent = agent_mac(self._key, self.transcript, granted)
        self._enter(ConfirmState.SENT)
        return self._sent

    INPUTS = (_SEND, _CHECK)
    INITIAL = ConfirmState.UNVERIFIED
    TRANSITIONS = table(
        {
            (ConfirmState.UNVERIFIED, _SEND): bug(
                "the agent's MAC before the technician's checks out would let a guesser "
                "test codes offline"
            ),
            (ConfirmState.UNVERIFIED, _CHECK): move(
                _check,
                (ConfirmState.VERIFIED, "MAC ok / confirmed"),
                (ConfirmState.FAILED, "MAC wrong / mismatch"),
            ),
            (ConfirmState.VERIFIED, _SEND): move(_send, ConfirmState.SENT, note="/ our MAC"),
            (ConfirmState.VERIFIED, _CHECK): stay(_Confirmation._ignore, "checked once"),
            (ConfirmState.SENT, _SEND): stay(_Confirmation._resend, "same MAC again"),
            (ConfirmState.SENT, _CHECK): stay(_Confirmation._ignore, "checked once"),
            (ConfirmState.FAILED, _SEND): bug("no MAC after a failed confirmation"),
            (ConfirmState.FAILED, _CHECK): stay(_Confirmation._ignore, "late"),
        }
    )


__all__ = [
    "CONSENT_NAMESPACE",
    "MAC_LENGTH",
    "PURPOSE_CONFIRM_AGENT",
    "PURPOSE_CONFIRM_CODE",
    "PURPOSE_CONFIRM_TECHNICIAN",
    "PURPOSE_PREVIOUS_CODE",
    "AgentConfirmation",
    "ConfirmListener",
    "ConfirmState",
    "TechnicianConfirmation",
    "Transcript",
    "agent_mac",
    "code_mac",
    "same_mac",
    "sign_transcript",
    "technician_mac",
    "verify_transcript_signature",
]
