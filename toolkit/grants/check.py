"""Checking a grant where it is used: the agent's side of consent by grant.

:func:`check_grant` returns the issuer that trust vouched for, or raises
:class:`GrantRefused` with one of :data:`REFUSALS` as its ``reason``; there is
no boolean to forget to check. The steps run in the order docs/grants.md gives, so a
grant that fails several checks is refused for the first.

The procedure check (which operations a grant allows) happens per operation,
in the agent's operations; this module does everything before the session.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING

from toolkit.consent.errors import ConsentError
from toolkit.errors import SignatureError
from toolkit.grants.model import NAMESPACE, Grant, format_time
from toolkit.identity import sshsig
from toolkit.identity.keys import blob_of, fingerprint, load_public
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.grants.ledger import Ledger
    from toolkit.identity.allowed_signers import AllowedSigners

#: Why a grant is refused, in the order check_grant tries them (the ledger's two last).
REFUSALS = (
    "forged",
    "untrusted-issuer",
    "not-yet-valid",
    "expired",
    "used-up",
    "revoked",
    "other-technician",
    "other-host",
    "other-ticket",
)

#: The SSHSIG namespace the technician's key must be trusted for (toolkit.consent._trust).
TECHNICIAN_NAMESPACE = "toolkit-consent"

_HINTS = {
    "forged": "The grant's text no longer matches its signature: it was changed after it "
    "was signed, or it was never signed by the key it carries. Someone may have tampered "
    "with it. Do not use it; ask the issuer for a new grant.",
    "untrusted-issuer": "The agent accepts grants only from the issuers its "
    '--accept-grants-from file trusts for namespaces="toolkit-grant". Ask the machine\'s '
    "owner for a grant from one of them, or to add the issuer's line.",
    "not-yet-valid": "The grant's window has not started: use it from its not-before time, "
    "or ask the issuer for one that starts earlier.",
    "expired": "The grant's window is over: ask the issuer for a new grant.",
    "used-up": "Every use the grant allows on this host is spent (`toolkit grant history` "
    "on the host lists them): ask the issuer for a new grant.",
    "revoked": "The machine's owner revoked the grant on this host (toolkit grant revoke): "
    "ask them why, and for a new grant if it is still wanted.",
    "other-technician": "The grant names another technician: connect with the key it names, "
    "or with a key the agent's trust file vouches for as the grant's technician "
    '(namespaces="toolkit-consent"), or ask the issuer for a grant naming you.',
    "other-host": "The grant does not list this host's key fingerprint or name: check that "
    "you reached the host you meant, or ask the issuer for a grant naming it.",
    "other-ticket": "A grant is for one ticket: connect with the ticket it names (--ticket), "
    "or ask the issuer for a grant for this one.",
}


class GrantRefused(ConsentError):
    """The customer's agent refused the grant.

    A grant takes the place of the one-time code only when it is signed by an
    issuer the agent trusts, within its window, for this host, this
    technician and this ticket, not revoked and with uses left.
    """

    #: The word in the agent's notice ("grant-refused"); an instance's ``reason`` is the
    #: refusal itself, one of REFUSALS (the notice's detail starts with it).
    reason = "grant-refused"

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REFUSALS:
            raise ValueError(f"not a grant refusal: {reason!r}")
        super().__init__(message, hint=_HINTS[reason])
        # The class attribute stays the wire word; this refusal's own word shadows it.
        vars(self)["reason"] = reason

    @property
    def detail(self) -> str:
        """The notice's detail: ``<REFUSAL>: <sentence>``, printable, at most 512 characters."""
        return printable(f"{self.reason}: {self.message}", 500)


def check_grant(
    grant: Grant,
    *,
    trust: AllowedSigners,
    technician_key: bytes,
    technician_email: str,
    ticket: str,
    host_key: bytes,
    names: Collection[str],
    now: datetime,
    ledger: Ledger | None = None,
) -> str:
    """Everything but the per-operation procedure check; the issuer principal trust matched.

    Raises GrantRefused naming the first check that fails.
    """
    gid = grant.id
    # 1. The signature holds over the body, in the grant's own namespace.
    signer_key = verify_signature(grant)
    # 2. The signer is trusted as the issuer the grant names, for grants, now.
    check_issuer(grant, signer_key, trust, now)
    # 3. The window.
    if now < grant.not_before:
        raise GrantRefused(
            "not-yet-valid",
            f"The grant {gid} is valid from {format_time(grant.not_before)}, "
            f"not yet at {format_time(now)}.",
        )
    if now > grant.not_after:
        raise GrantRefused("expired", f"The grant {gid} expired at {format_time(grant.not_after)}.")
    # 4. This host: its key's fingerprint, or one of its names.
    host_fp = fingerprint(host_key)
    if host_fp not in grant.hosts and not any(n in grant.hosts for n in names):
        known = ", ".join([host_fp, *sorted(names)])
        raise GrantRefused(
            "other-host",
            f"The grant {gid} does not name this host ({printable(known, 200)}).",
        )
    # 5. The technician: the key the grant names, or a key vouched for as its principal.
    _check_technician(grant, trust, technician_key, technician_email, now)
    # 6. The ticket.
    if ticket != grant.ticket:
        raise GrantRefused(
            "other-ticket",
            f"The grant {gid} is for ticket {grant.ticket}, not {printable(ticket, 80)}.",
        )
    # 7. The ledger: revoked, uses left (spending re-checks both, atomically).
    if ledger is not None:
        revoked = ledger.revoked(gid)
        if revoked is not None:
            raise GrantRefused(
                "revoked", f"The grant {gid} was revoked on this host at {format_time(revoked)}."
            )
        used = ledger.used(gid)
        if used >= grant.uses:
            raise GrantRefused(
                "used-up",
                f"The grant {gid} is used up on this host ({used} of {grant.uses} uses).",
            )
    return grant.issuer


def verify_signature(grant: Grant) -> bytes:
    """The signer's key blob if the signature holds over the body; GrantRefused("forged")."""
    try:
        sig = sshsig.SSHSig.from_bytes(grant.signature)
        return sshsig.verify(sig, grant.body, NAMESPACE)
    except SignatureError as exc:
        raise GrantRefused(
            "forged",
            f"The grant {grant.id}'s signature does not hold ({exc.message.rstrip('.')}).",
        ) from None


def before_connecting(grant: Grant, *, fix: str) -> None:
    """UsageError when ``grant`` neither names the fix ``fix`` nor covers it with its fixes
    scope, found before anything connects.

    Every agent would let the session in (its consent is the grant's) and then refuse
    the fix: one use spent on each host for nothing. Whatever else makes an agent refuse
    a grant (its window, ticket, key, host, issuer) is left to the agent, which says
    why with its reason and spends no use.
    """
    from toolkit.errors import UsageError

    if grant.names("fix", fix) is None and "fixes" not in grant.scopes:
        named = ", ".join(p.name for p in grant.procedures if p.kind == "fix") or "no fix"
        raise UsageError(
            printable(
                f"The grant {grant.id} does not name the fix {fix} (it names {named}): every "
                "agent would spend a use on it and refuse the fix.",
                400,
            ),
            hint="Ask its issuer for a grant for this fix (toolkit grant show FILE prints it).",
        )


def can_issue(trust: AllowedSigners) -> bool:
    """Whether any line of ``trust`` could vouch for an issuer (its namespaces name
    toolkit-grant): an agent given a file with none would accept no grant ever."""
    from toolkit.identity.allowed_signers import match_pattern_list

    return any(
        e.namespaces is not None and match_pattern_list(NAMESPACE, e.namespaces)
        for e in trust.entries
    )


def check_issuer(grant: Grant, signer_key: bytes, trust: AllowedSigners, now: datetime) -> None:
    """GrantRefused("untrusted-issuer") unless ``trust`` vouches for ``signer_key`` as the
    grant's issuer, for namespace toolkit-grant, at ``now``.

    Stricter than OpenSSH in one way: the line must name toolkit-grant in its
    ``namespaces=``. A line without one trusts its key for every namespace, and the
    same file lists technicians (toolkit-consent), who must not issue their own grants.
    """
    try:
        entry = trust.check(grant.issuer, signer_key, NAMESPACE, at=now)
    except SignatureError as exc:
        # The technician hears this: the agent's own path to its file stays its own.
        why = exc.message
        if why.startswith(f"{trust.source} "):
            why = "the trust file" + why[len(trust.source) :]
        raise GrantRefused(
            "untrusted-issuer",
            f"The grant {grant.id} is signed by {fingerprint(signer_key)}, which is not trusted "
            f"to issue grants as {grant.issuer} ({printable(why.rstrip('.'), 300)}).",
        ) from None
    if entry.namespaces is None:
        raise GrantRefused(
            "untrusted-issuer",
            f"The grant {grant.id} is signed by {fingerprint(signer_key)}, whose line "
            f"{entry.lineno} in the agent's trust file names no namespaces: an issuer's line "
            f'must say namespaces="{NAMESPACE}".',
        )


def _check_technician(
    grant: Grant, trust: AllowedSigners, key: bytes, email: str, now: datetime
) -> None:
    gid = grant.id
    try:
        plain = blob_of(load_public(key))
    except SignatureError:
        raise GrantRefused("other-technician", "The technician's key is malformed.") from None
    named = grant.technician_key
    if named is not None:
        if plain != named:
            raise GrantRefused(
                "other-technician",
                f"The grant {gid} names the key {fingerprint(named)}, "
                f"not this technician's {fingerprint(plain)}.",
            )
        return
    if email != grant.technician:
        raise GrantRefused(
            "other-technician",
            f"The grant {gid} is for {grant.technician}, not {printable(email, 200)}.",
        )
    try:
        trust.check(email, key, TECHNICIAN_NAMESPACE, at=now)
    except SignatureError:
        raise GrantRefused(
            "other-technician",
            f"The grant {gid} is for {grant.technician}, and the agent's trust file does not "
            f"vouch for the key {fingerprint(key)} as {grant.technician} "
            f'(namespaces="{TECHNICIAN_NAMESPACE}").',
        ) from None


__all__ = [
    "REFUSALS",
    "TECHNICIAN_NAMESPACE",
    "GrantRefused",
    "check_grant",
    "check_issuer",
    "verify_signature",
]
