"""The agent's side of grants: whom it trusts to issue them, where it counts their uses.

``toolkit share --accept-grants-from FILE`` (and ``toolkit serve``) give the
agent a :class:`GrantAcceptance`; for each grant a technician brings and
proves (toolkit.consent._grant), :meth:`GrantAcceptance.admit` checks it
(:func:`toolkit.grants.check.check_grant`), decides the scopes the session
gets, and spends one use on disk before the session starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from toolkit.consent._approval import Scope

if TYPE_CHECKING:
    from toolkit.consent._grant import Admission, GrantClaim
    from toolkit.grants import Grant
    from toolkit.grants.ledger import Ledger
    from toolkit.identity.allowed_signers import AllowedSigners


def covered(grant: Grant) -> frozenset[Scope]:
    """The session scopes a grant can give: its scopes, and what its procedures need.

    A fix is checked and verified with read-only steps, so a named fix needs
    both scopes; what each operation may do is still decided against the
    grant itself (toolkit.agent.operations). Never ``shell``.
    """
    out = {Scope(s) for s in grant.scopes if s in (Scope.DIAGNOSTICS, Scope.FIXES)}
    for procedure in grant.procedures:
        out.add(Scope.DIAGNOSTICS)
        if procedure.kind == "fix":
            out.add(Scope.FIXES)
    return frozenset(out)


@dataclass(frozen=True)
class GrantAcceptance:
    """Grants an agent accepts: issued by ``trust``, counted in ``ledger``."""

    trust: AllowedSigners  # --accept-grants-from FILE
    ledger: Ledger
    names: frozenset[str] = frozenset()  # the agent's own names (serve --name)

    def admit(
        self,
        claim: GrantClaim,
        *,
        host_key: bytes,
        offered: frozenset[Scope],
        peer: str,
        now: datetime | None = None,
    ) -> Admission:
        """Check the grant ``claim`` brings and spend one use; GrantRefused (or
        NothingOffered) says why not. The use is spent before anything else happens:
        a session that then fails to start has still used it."""
        from toolkit.consent._grant import Admission
        from toolkit.consent.errors import NothingOffered
        from toolkit.grants import Grant
        from toolkit.grants.check import check_grant

        when = now if now is not None else datetime.now(UTC)
        grant = Grant.parse(claim.grant, "the grant sent")
        issuer = check_grant(
            grant,
            trust=self.trust,
            technician_key=claim.key,
            technician_email=claim.email,
            ticket=claim.ticket,
            host_key=host_key,
            names=self.names,
            now=when,
            ledger=self.ledger,
        )
        granted = claim.requested & offered & covered(grant)
        if not granted:
            raise NothingOffered(
                "The grant gives none of the scopes asked for that this agent offers."
            )
        use = self.ledger.spend(
            grant,
            technician=claim.email,
            ticket=claim.ticket,
            session=f"consent-{claim.nonce[:8].hex()}",
            peer=peer,
            now=when,
        )
        return Admission(grant, issuer, use.number, use.uses, granted)


__all__ = ["GrantAcceptance", "covered"]
