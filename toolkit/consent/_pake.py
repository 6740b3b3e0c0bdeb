"""SPAKE2 keyed by the one-time code, in two layers. The only module that imports spake2.

The outer :class:`Pake` machine only puts two events in order, "the code is
known" and "the peer's PAKE message arrived", which can come either way
round: the agent knows its code before anything arrives, while the
technician may receive the agent's message first and type the code after.
The inner :class:`SortedPake` then runs SPAKE2 on them in the one order it
needs. A peer message that is not a valid SPAKE2 message sends it to the
terminal REFUSED state.

The technician is SPAKE2 side A, the agent side B, with identities
``toolkit-technician`` and ``toolkit-agent``; the password is the 9 digits
as ASCII bytes. The shared key is *unverified*: it only becomes trusted when
the peer's confirmation MAC checks out (``_confirm.py``). Sub-keys come from
:meth:`PakeKey.derive`, HKDF-SHA256 with one purpose label per use.

Outputs go to a :class:`PakeListener`: our message to send, then either the
key or a refusal.
"""

from __future__ import annotations

import enum
from typing import NoReturn, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from spake2 import SPAKE2_A, SPAKE2_B, SPAKEError
from spake2.ed25519_basic import NotOnCurve

from toolkit.consent._machine import Input, Machine, bug, move, stay, table
from toolkit.secrets import Secret

ID_TECHNICIAN = b"toolkit-technician"
ID_AGENT = b"toolkit-agent"
#: A SPAKE2 message on the wire: one side byte (b"A" or b"B") and a 32-byte point.
MESSAGE_LENGTH = 33
KEY_LENGTH = 32

# What spake2 0.9 raises on a hostile message: OffSides (a SPAKEError) for a
# wrong side byte, NotOnCurve for bytes that are no curve point, ValueError
# for the identity element or a point outside the prime-order subgroup.
_BAD_MESSAGE = (SPAKEError, NotOnCurve, ValueError)


class Side(enum.Enum):
    TECHNICIAN = "technician"  # SPAKE2 side A
    AGENT = "agent"  # SPAKE2 side B


class PakeKey:
    """The SPAKE2 shared key. Use it only through :meth:`derive`, one purpose each."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_LENGTH:
            raise ValueError("a SPAKE2 key is 32 bytes")
        self._key = key

    def derive(self, purpose: bytes, length: int = 32) -> bytes:
        """HKDF-SHA256(key, salt none, info=purpose)."""
        if not purpose:
            raise ValueError("every sub-key needs its own purpose label")
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose).derive(
            self._key
        )

    def __repr__(self) -> str:
        return "PakeKey(<redacted>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("A PakeKey cannot be pickled.")


class PakeListener(Protocol):
    def pake_message(self, message: bytes) -> None:
        """Our SPAKE2 message (33 bytes), to send to the peer."""
        ...

    def pake_key(self, key: PakeKey) -> None:
        """The shared key, still unverified."""
        ...

    def pake_refused(self) -> None:
        """The peer's message was not a valid SPAKE2 message; no key will come."""
        ...


# --- inner machine: SPAKE2 itself, inputs in order ------------------------


class SortedState(enum.Enum):
    IDLE = "idle"
    STARTED = "started"
    KEYED = "keyed"
    REFUSED = "refused"


_START: Input[None] = Input("start")
_FINISH: Input[None] = Input("finish")


class SortedPake(Machine[SortedState]):
    """Runs SPAKE2 once: ``start(code)``, then ``finish(peer_message)``."""

    State = SortedState

    def __init__(self, side: Side, listener: PakeListener) -> None:
        self._side = side
        self._listener = listener
        self._spake: SPAKE2_A | SPAKE2_B | None = None
        self._state = SortedState.IDLE

    def start(self, code: Secret) -> None:
        self._fire(_START, code)

    def finish(self, message: bytes) -> None:
        self._fire(_FINISH, message)

    def _start(self, code: Secret) -> None:
        cls = SPAKE2_A if self._side is Side.TECHNICIAN else SPAKE2_B
        self._spake = cls(code.reveal().encode("ascii"), idA=ID_TECHNICIAN, idB=ID_AGENT)
        message: bytes = self._spake.start()
        self._enter(SortedState.STARTED)
        self._listener.pake_message(message)

    def _finish(self, message: bytes) -> None:
        spake, self._spake = self._spake, None  # it holds the password: drop it now
        key: bytes | None = None
        if isinstance(message, bytes) and len(message) == MESSAGE_LENGTH and spake is not None:
            try:
                key = spake.finish(message)
            except _BAD_MESSAGE:
                key = None
        if key is None:
            self._enter(SortedState.REFUSED)
            self._listener.pake_refused()
            return
        self._enter(SortedState.KEYED)
        self._listener.pake_key(PakeKey(key))

    def _ignore(self, *_: object) -> None:
        return None

    INPUTS = (_START, _FINISH)
    INITIAL = SortedState.IDLE
    TRANSITIONS = table(
        {
            (SortedState.IDLE, _START): move(_start, SortedState.STARTED, note="/ pake_message"),
            (SortedState.IDLE, _FINISH): bug("the outer machine gives the code first"),
            (SortedState.STARTED, _START): stay(_ignore, "second code ignored"),
            (SortedState.STARTED, _FINISH): move(
                _finish,
                (SortedState.KEYED, "valid / pake_key"),
                (SortedState.REFUSED, "malformed / pake_refused"),
            ),
            (SortedState.KEYED, _START): stay(_ignore, "late"),
            (SortedState.KEYED, _FINISH): stay(_ignore, "late"),
            (SortedState.REFUSED, _START): stay(_ignore, "late"),
            (SortedState.REFUSED, _FINISH): stay(_ignore, "late"),
        }
    )


# --- outer machine: put "code known" and "peer message arrived" in order ---


class PakeState(enum.Enum):
    KNOW_NOTHING = "know-nothing"
    KNOW_CODE = "know-code"
    KNOW_PEER = "know-peer"
    KNOW_BOTH = "know-both"


_CODE: Input[None] = Input("got_code")
_PEER: Input[None] = Input("got_peer_message")


class Pake(Machine[PakeState]):
    """Feeds :class:`SortedPake` the code and the peer's message, whichever comes first.

    A second code or a second peer message is a documented non-event: the
    first one counts. Everything after both are known goes to the inner
    machine, whose outputs reach ``listener`` directly.
    """

    State = PakeState

    def __init__(self, side: Side, listener: PakeListener) -> None:
        self.side = side
        self._inner = SortedPake(side, listener)
        self._peer: bytes | None = None
        self._state = PakeState.KNOW_NOTHING

    @property
    def inner_state(self) -> SortedState:
        return self._inner.state

    def got_code(self, code: Secret) -> None:
        self._fire(_CODE, code)

    def got_peer_message(self, message: bytes) -> None:
        self._fire(_PEER, message)

    def _code_first(self, code: Secret) -> None:
        self._enter(PakeState.KNOW_CODE)
        self._inner.start(code)

    def _peer_first(self, message: bytes) -> None:
        self._peer = message
        self._enter(PakeState.KNOW_PEER)

    def _peer_second(self, message: bytes) -> None:
        self._enter(PakeState.KNOW_BOTH)
        self._inner.finish(message)

    def _code_second(self, code: Secret) -> None:
        message, self._peer = self._peer, None
        self._enter(PakeState.KNOW_BOTH)
        self._inner.start(code)
        self._inner.finish(message if message is not None else b"")

    def _ignore(self, *_: object) -> None:
        return None

    INPUTS = (_CODE, _PEER)
    INITIAL = PakeState.KNOW_NOTHING
    TRANSITIONS = table(
        {
            (PakeState.KNOW_NOTHING, _CODE): move(
                _code_first, PakeState.KNOW_CODE, note="start SPAKE2"
            ),
            (PakeState.KNOW_NOTHING, _PEER): move(_peer_first, PakeState.KNOW_PEER, note="keep it"),
            (PakeState.KNOW_CODE, _CODE): stay(_ignore, "first code counts"),
            (PakeState.KNOW_CODE, _PEER): move(
                _peer_second, PakeState.KNOW_BOTH, note="finish SPAKE2"
            ),
            (PakeState.KNOW_PEER, _CODE): move(
                _code_second, PakeState.KNOW_BOTH, note="start and finish SPAKE2"
            ),
            (PakeState.KNOW_PEER, _PEER): stay(_ignore, "first message counts"),
            (PakeState.KNOW_BOTH, _CODE): stay(_ignore, "late"),
            (PakeState.KNOW_BOTH, _PEER): stay(_ignore, "late"),
        }
    )


__all__ = [
    "ID_AGENT",
    "ID_TECHNICIAN",
    "MESSAGE_LENGTH",
    "Pake",
    "PakeKey",
    "PakeListener",
    "PakeState",
    "Side",
    "SortedPake",
    "SortedState",
]
