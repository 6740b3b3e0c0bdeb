"""The agent's side of grants: whom it trusts to issue them, where it counts their uses.

``toolkit share --accept-grants-from FILE`` (and ``toolkit serve``) give the
agent a :class:`GrantAcceptance`; for each grant a technician brings and
proves (toolkit.consent._grant), :meth:`GrantAcceptance.admit` checks it
(:func:`toolkit.grants.check.check_grant`), decides the scopes the session
gets, and spends one use on disk before the session starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.consent._approval import Consent, Scope
from toolkit.errors import ToolkitError
from toolkit.identity.keys import fingerprint

if TYPE_CHECKING:
    from toolkit.consent._grant import Admission, GrantClaim
    from toolkit.grants import Grant
    from toolkit.grants.ledger import Ledger
    from toolkit.identity.allowed_signers import AllowedSigners


logger = logging.getLogger(__name__)


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

    @classmethod
    def from_file(
        cls, path: Path, ledger: Ledger, names: frozenset[str] = frozenset()
    ) -> GrantAcceptance:
        """Grants whose issuers ``path`` (an allowed_signers file) names; UsageError for a
        file with no line that could ever vouch for an issuer, rather than an agent that
        silently accepts nothing."""
        from toolkit.errors import UsageError
        from toolkit.grants.check import can_issue
        from toolkit.grants.model import NAMESPACE
        from toolkit.identity.allowed_signers import AllowedSigners
        from toolkit.paths import check_guarded
        from toolkit.text import printable

        trust = AllowedSigners.from_file(path)  # first: a device or FIFO is said as such
        check_guarded(path, "the trust file")
        check_guarded(ledger.root, "the grant ledger")
        if not can_issue(trust):
            raise UsageError(
                f"{printable(str(path), 200)} names no issuer of grants, so no grant could "
                "ever be accepted.",
                hint=f'An issuer\'s line says namespaces="{NAMESPACE}" (docs/grants.md).',
            )
        return cls(trust, ledger, names)

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
        # Who: the principal the trust file vouched for, or, for a grant that names a key,
        # that key (the email beside it is only what the technician says).
        who = claim.email if grant.technician_key is None else fingerprint(claim.key)
        use = self.ledger.spend(
            grant,
            technician=who,
            ticket=claim.ticket,
            session=f"consent-{claim.nonce[:8].hex()}",
            peer=peer,
            now=when,
        )
        return Admission(grant, issuer, use.number, use.uses, granted, use)

    def finished(self, consent: Consent, reason: str, transcript: Path | None) -> None:
        """Record in the ledger how a session a grant opened ended (its history shows it).

        Never raises: the session is over either way, and its use stays spent.
        """
        record = consent.grant
        if record is None or record.spent is None:
            return
        try:
            self.ledger.finish(
                record.spent,
                outcome=reason,
                transcript=str(transcript) if transcript is not None else None,
                now=datetime.now(UTC),
            )
        except (ToolkitError, OSError):
            logger.exception("the end of grant use %s was not recorded", record.spent.number)


def finish_use(grants: GrantAcceptance | None, consent: Consent, reason: str, path: Path) -> None:
    """:meth:`GrantAcceptance.finished`, when the agent takes grants (AgentSession.end)."""
    if grants is not None:
        grants.finished(consent, reason, path)


__all__ = ["GrantAcceptance", "covered", "finish_use"]
