"""What the customer is asked, what they answer, and who asks them.

The agent's handshake produces an :class:`ApprovalRequest` once the
technician has proved the code and its key. Whoever stands in for the
customer, the rich prompt of ``toolkit share`` or :class:`AutoApprove` for
``--yes``, implements :class:`Approver` and returns a :class:`Decision`. The
core never prompts; it only calls ``ask``.

Scopes never imply one another: ``diagnostics``, ``fixes`` and ``shell`` are
granted one by one, and a decision can only grant what the technician asked
for and the customer offers.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from toolkit.consent.errors import DECLINES
from toolkit.identity.keys import fingerprint

if TYPE_CHECKING:
    from toolkit.grants import Grant
    from toolkit.grants.ledger import Use

logger = logging.getLogger("toolkit.consent")


class Scope(enum.StrEnum):
    """What a session may do. None implies another; ``shell`` is only ever granted by name."""

    DIAGNOSTICS = "diagnostics"
    FIXES = "fixes"
    SHELL = "shell"


def scopes(values: Iterable[str | Scope]) -> frozenset[Scope]:
    """Scope names as a set; ValueError names an unknown one."""
    out: set[Scope] = set()
    for value in values:
        try:
            out.add(Scope(value))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {value!r} (known: {known})") from None
    return frozenset(out)


def scope_names(values: Iterable[Scope]) -> list[str]:
    """Scopes in their canonical order (as declared): for messages and display."""
    chosen = set(values)
    return [s.value for s in Scope if s in chosen]


@dataclass(frozen=True)
class ApprovalRequest:
    """Everything the customer is shown before saying yes.

    ``name``, ``email`` and ``ticket`` are the technician's claims, checked for
    shape only (no control or invisible characters); ``key`` and
    ``fingerprint`` are proven: the technician signed the handshake with that
    key. ``trusted`` says whether the customer's trust settings (an
    allowed_signers file or an organisation CA) vouch for that key as that
    email. ``requested`` is what the technician asks for; ``offered`` what the
    customer allows at most (``toolkit share --scope``).
    """

    name: str
    email: str
    key: bytes = field(repr=False)
    trusted: bool
    ticket: str
    requested: frozenset[Scope]
    offered: frozenset[Scope]
    host_key: bytes = field(default=b"", repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    @property
    def grantable(self) -> frozenset[Scope]:
        """What a yes can grant: asked for and offered."""
        return self.requested & self.offered

    def grant(self, chosen: Iterable[Scope] | None = None) -> Decision:
        """A yes for ``chosen`` (default: everything grantable).

        ValueError if ``chosen`` is empty or holds a scope that was not both
        requested and offered.
        """
        granted = self.grantable if chosen is None else frozenset(chosen)
        extra = granted - self.grantable
        if extra:
            raise ValueError(
                f"cannot grant {', '.join(scope_names(extra))}: not both requested and offered"
            )
        if not granted:
            raise ValueError("nothing to grant: decline instead")
        return Decision(True, granted)

    def decline(self, reason: str = "declined") -> Decision:
        """A no; ``reason`` says how it came (DECLINE_REASONS), for the technician's notice."""
        return Decision(False, frozenset(), reason)


#: How a no came about, each its own word in the technician's notice (docs/consent.md):
#: the customer said no, did not answer in time, could not be asked (no terminal and no
#: --yes), or was offered nothing the technician asked for. One refusal each (DECLINES).
DECLINE_REASONS = tuple(DECLINES)


@dataclass(frozen=True)
class Decision:
    """The customer's answer: approved with the scopes granted, or not."""

    approved: bool
    granted: frozenset[Scope] = frozenset()
    #: How a no came about (one of DECLINE_REASONS); None for a yes.
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.approved and self.reason is not None:
            raise ValueError("a yes has no reason to decline")
        if not self.approved and self.reason is None:
            object.__setattr__(self, "reason", "declined")
        if not self.approved and self.reason not in DECLINE_REASONS:
            raise ValueError(f"a no is one of {', '.join(DECLINE_REASONS)}")
        if not isinstance(self.granted, frozenset) or not all(
            isinstance(s, Scope) for s in self.granted
        ):
            raise TypeError("granted must be a frozenset of Scope")
        if self.approved and not self.granted:
            raise ValueError("an approval grants at least one scope")
        if not self.approved and self.granted:
            raise ValueError("a refusal grants nothing")

    @classmethod
    def deny(cls) -> Decision:
        return cls(False, frozenset())

    def check_against(self, request: ApprovalRequest) -> None:
        """ValueError unless this grants only what was requested and offered."""
        extra = self.granted - request.grantable
        if extra:
            raise ValueError(
                f"the decision grants {', '.join(scope_names(extra))}, "
                "which was not both requested and offered"
            )


@dataclass(frozen=True)
class GrantRecord:
    """The grant a consent was given by, as both transcripts keep it: whole, and its verdict.

    ``use`` of ``uses`` is the agent's count for this host (Ledger.spend);
    ``verdict`` says who vouched for it: "accepted by <issuer principal>".
    """

    text: str  # the whole grant file: body and armored signature
    id: str
    sha256: str  # of the whole file
    issuer: str
    use: int
    uses: int
    verdict: str
    #: The parsed grant, for the agent's operations; not recorded (``text`` is).
    grant: Grant | None = field(default=None, repr=False, compare=False)
    #: The agent's use of it (toolkit.grants.ledger.Use), to record how the session ended.
    spent: Use | None = field(default=None, repr=False, compare=False)

    def as_event(self) -> dict[str, object]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "issuer": self.issuer,
            "use": self.use,
            "uses": self.uses,
            "verdict": self.verdict,
            "text": self.text,
        }


@dataclass(frozen=True)
class Consent:
    """A completed consent, as each side records it (never the code).

    ``trusted`` is the agent's verdict on the technician's key; the
    technician's side does not know it and records None. ``grant`` is set
    when a grant gave the consent (``method`` "grant") instead of the code
    and the customer's yes.
    """

    name: str
    email: str
    key: bytes = field(repr=False)
    ticket: str
    requested: frozenset[Scope]
    granted: frozenset[Scope]
    host_key: bytes = field(repr=False)
    trusted: bool | None = None
    method: str = "spake2"
    grant: GrantRecord | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    @property
    def host_key_fingerprint(self) -> str:
        return fingerprint(self.host_key)

    def as_event(self) -> dict[str, object]:
        """Fields for the transcript's consent event (JSON-ready, no secrets)."""
        return {
            "method": self.method,
            "result": "approved",
            "technician": self.name,
            "email": self.email,
            "key_fingerprint": self.fingerprint,
            "trusted": self.trusted,
            "ticket": self.ticket,
            "requested": scope_names(self.requested),
            "granted": scope_names(self.granted),
            "host_key_fingerprint": self.host_key_fingerprint,
            **({"grant": self.grant.as_event()} if self.grant is not None else {}),
        }


class Approver(Protocol):
    """Asks the customer. ``ask`` may be a coroutine (it usually waits for a person)."""

    def ask(self, request: ApprovalRequest) -> Decision | Awaitable[Decision]: ...


async def get_decision(approver: Approver, request: ApprovalRequest) -> Decision:
    """Call ``approver.ask``, awaiting it if it is a coroutine; a non-Decision is a no."""
    answer = approver.ask(request)
    if inspect.isawaitable(answer):
        answer = await answer
    if not isinstance(answer, Decision):
        logger.error("approver returned %r instead of a Decision; treating it as no", type(answer))
        return Decision.deny()
    return answer


class AutoApprove:
    """Approves every request as asked (within the offer), for ``toolkit share --yes``.

    Nobody looks at who connects, so it logs a warning every time it runs.
    """

    def ask(self, request: ApprovalRequest) -> Decision:
        logger.warning(
            "approving without asking (--yes): %s <%s> %s, ticket %s, scopes %s",
            request.name,
            request.email,
            request.fingerprint,
            request.ticket,
            ",".join(scope_names(request.grantable)) or "(none)",
        )
        if not request.grantable:
            return request.decline("nothing-offered")
        return request.grant()


__all__ = [
    "DECLINE_REASONS",
    "ApprovalRequest",
    "Approver",
    "AutoApprove",
    "Consent",
    "Decision",
    "GrantRecord",
    "Scope",
    "get_decision",
    "scope_names",
    "scopes",
]
