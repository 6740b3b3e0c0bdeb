"""Recording fakes for the consent machines: each appends ``(name, args...)`` to one list."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers import FakeClock
from toolkit.consent import (
    AgentHandshake,
    OneTimeCode,
    Scope,
    TechnicianHandshake,
    parse_code,
)
from toolkit.consent._machine import Machine
from toolkit.consent._pake import PakeKey
from toolkit.consent.errors import ConsentError
from toolkit.identity.keys import blob_of, fingerprint
from toolkit.identity.signer import KeySigner
from toolkit.secrets import Secret

DIGITS = "530271846"
GROUPED = "530-271-846"
WRONG = "530271847"
Event = tuple[object, ...]


def host_key() -> bytes:
    return blob_of(ed25519.Ed25519PrivateKey.generate().public_key())


def new_signer() -> KeySigner:
    return KeySigner(ed25519.Ed25519PrivateKey.generate())


class RecordingPakeListener:
    def __init__(self, events: list[Event], who: str = "pake") -> None:
        self.events = events
        self.who = who
        self.message: bytes | None = None
        self.key: PakeKey | None = None

    def pake_message(self, message: bytes) -> None:
        self.message = message
        self.events.append((f"{self.who}.pake_message", len(message)))

    def pake_key(self, key: PakeKey) -> None:
        self.key = key
        self.events.append((f"{self.who}.pake_key",))

    def pake_refused(self) -> None:
        self.events.append((f"{self.who}.pake_refused",))


class RecordingConfirmListener:
    def __init__(self, events: list[Event], who: str = "confirm") -> None:
        self.events = events
        self.who = who

    def confirmed(self) -> None:
        self.events.append((f"{self.who}.confirmed",))

    def mismatch(self) -> None:
        self.events.append((f"{self.who}.mismatch",))


class RecordingCode:
    """A CodeSource that records each call and delegates to a real OneTimeCode."""

    def __init__(self, code: OneTimeCode, events: list[Event]) -> None:
        self.code = code
        self.events = events

    def begin(self) -> Secret:
        try:
            secret = self.code.begin()
        except ConsentError as exc:
            self.events.append(("code.begin", type(exc).__name__))
            raise
        self.events.append(("code.begin", "ok"))
        return secret

    def succeeded(self) -> None:
        self.events.append(("code.succeeded",))
        self.code.succeeded()

    def failed(self) -> int:
        left = self.code.failed()
        self.events.append(("code.failed", left))
        return left


class RecordingSigner:
    """A Signer that records what it signs; ``claim`` may name a different public key."""

    def __init__(
        self, events: list[Event], inner: KeySigner | None = None, claim: bytes | None = None
    ) -> None:
        self.inner = inner or new_signer()
        self.events = events
        self.claim = claim

    @property
    def public_blob(self) -> bytes:
        return self.claim if self.claim is not None else self.inner.public_blob

    def sign_data(self, data: bytes) -> bytes:
        self.events.append(("signer.sign", data[:6]))
        return self.inner.sign_data(data)


class RecordingTrust:
    def __init__(self, events: list[Event], answer: bool = False) -> None:
        self.events = events
        self.answer = answer

    def __call__(self, key: bytes, email: str) -> bool:
        self.events.append(("trust", fingerprint(key), email))
        return self.answer


@dataclass
class Pair:
    """A real agent and a real technician that share a code (unless told otherwise)."""

    events: list[Event]
    clock: FakeClock
    otc: OneTimeCode
    code: RecordingCode
    signer: RecordingSigner
    trust: RecordingTrust
    host_key: bytes
    agent: AgentHandshake
    tech: TechnicianHandshake
    wire: list[str] = field(default_factory=list)


def make_pair(
    *,
    typed: str | None = DIGITS,
    offered: Iterable[Scope] = (Scope.DIAGNOSTICS, Scope.FIXES),
    requested: Iterable[Scope | str] = ("diagnostics",),
    seen_host_key: bytes | None = None,
    otc: OneTimeCode | None = None,
    clock: FakeClock | None = None,
    trusted: bool = False,
) -> Pair:
    events: list[Event] = []
    clock = clock or FakeClock()
    otc = otc or OneTimeCode(Secret(DIGITS), clock=clock)
    code = RecordingCode(otc, events)
    key = host_key()
    signer = RecordingSigner(events)
    trust = RecordingTrust(events, trusted)
    agent = AgentHandshake(code, key, offered, trust=trust)
    tech = TechnicianHandshake(
        signer,
        seen_host_key or key,
        name="Alice Tech",
        email="alice@example.com",
        ticket="T-1",
        scopes=requested,
        code=parse_code(typed) if typed is not None else None,
    )
    return Pair(events, clock, otc, code, signer, trust, key, agent, tech)


def new_agent(pair: Pair, *, offered: Iterable[Scope] = (Scope.DIAGNOSTICS,)) -> AgentHandshake:
    """Another kbdint attempt against the same code (the next handshake)."""
    return AgentHandshake(pair.code, pair.host_key, offered, trust=pair.trust)


def new_tech(pair: Pair, typed: str = DIGITS) -> TechnicianHandshake:
    return TechnicianHandshake(
        pair.signer,
        pair.host_key,
        name="Alice Tech",
        email="alice@example.com",
        ticket="T-1",
        scopes=["diagnostics"],
        code=parse_code(typed),
    )


S = TypeVar("S", bound=enum.Enum)


def state(machine: Machine[S]) -> S:
    """The machine's state (a call, so that type checkers do not narrow it between steps)."""
    return machine.state
