"""check_grant: each refusal, in its documented order, with real keys, allowed_signers
lines and certificates."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers import new_signer
from tests.unit.grants.test_grant_model import FIX, ISSUER, NOW
from toolkit.consent.errors import ConsentError
from toolkit.errors import ExitCode
from toolkit.grants import NAMESPACE, Grant, issue
from toolkit.grants.check import REFUSALS, GrantRefused, check_grant
from toolkit.grants.ledger import Ledger
from toolkit.identity import sshsig
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.identity.keys import blob_of, fingerprint, public_line
from toolkit.identity.signer import KeySigner

TECH = "alice@example.com"
OWNER = new_signer()
ALICE = new_signer()
HOST = new_signer().public_blob
HOST_FP = fingerprint(HOST)
DURING = NOW + timedelta(hours=1)


def line(principal: str, signer: KeySigner | bytes, options: str = "") -> str:
    blob = signer if isinstance(signer, bytes) else signer.public_blob
    return f"{principal} {options + ' ' if options else ''}{public_line(blob)}\n"


TRUST = line(ISSUER, OWNER, f'namespaces="{NAMESPACE}"') + line(
    TECH, ALICE, 'namespaces="toolkit-consent"'
)


def grant_of(signer: KeySigner = OWNER, **overrides: object) -> Grant:
    values: dict[str, object] = {
        "issuer": ISSUER,
        "technician": TECH,
        "procedures": [FIX],
        "scopes": [],
        "hosts": [HOST_FP],
        "ticket": "T-17",
        "not_before": NOW,
        "not_after": NOW + timedelta(hours=8),
        "uses": 2,
        "now": NOW,
    }
    values.update(overrides)
    return issue(signer, **values)  # type: ignore[arg-type]


def check(grant: Grant, trust: str = TRUST, **overrides: object) -> str:
    values: dict[str, object] = {
        "trust": AllowedSigners.from_text(trust, "trust"),
        "technician_key": ALICE.public_blob,
        "technician_email": TECH,
        "ticket": "T-17",
        "host_key": HOST,
        "names": frozenset(),
        "now": DURING,
    }
    values.update(overrides)
    return check_grant(grant, **values)  # type: ignore[arg-type]


def refused(reason: str, grant: Grant, trust: str = TRUST, **overrides: object) -> GrantRefused:
    with pytest.raises(GrantRefused) as caught:
        check(grant, trust, **overrides)
    assert caught.value.reason == reason, caught.value.message
    return caught.value


def test_a_good_grant_passes_and_names_its_issuer() -> None:
    assert check(grant_of()) == ISSUER


def test_the_refusal_is_a_consent_error_with_its_reason_and_a_detail() -> None:
    exc = refused("other-ticket", grant_of(), ticket="T-\x1b[2J9")
    assert isinstance(exc, ConsentError)
    assert exc.exit_code == ExitCode.REFUSED
    assert GrantRefused.reason == "grant-refused"  # the notice's word stays the class's
    assert exc.detail.startswith("other-ticket: The grant g-")
    assert "\x1b" not in exc.detail and "\\x1b" in exc.detail
    assert len(exc.detail) <= 512
    assert "--ticket" in exc.diagnostics()
    assert set(REFUSALS) >= {"forged", "used-up", "other-host"}
    with pytest.raises(ValueError):
        GrantRefused("bad-word", "x")


def test_forged_a_body_changed_after_signing() -> None:
    data = grant_of().to_bytes()
    changed = Grant.parse(data.replace(b"uses: 2\n", b"uses: 9\n"))
    exc = refused("forged", changed)
    assert "does not hold" in exc.message


def test_forged_a_signature_made_for_another_namespace() -> None:
    good = grant_of()
    other = sshsig.sign(OWNER, good.body, "toolkit-consent").to_bytes()
    exc = refused("forged", Grant.parse(good.body + sshsig.armor(other).encode()))
    assert "toolkit-consent" in exc.message


def test_forged_a_signature_of_another_key_over_the_same_body() -> None:
    good = grant_of()
    sig = sshsig.sign(OWNER, good.body, NAMESPACE)
    swapped = sshsig.SSHSig(new_signer().public_blob, NAMESPACE, "sha512", sig.signature)
    refused("forged", Grant.parse(good.body + swapped.armor().encode()))


def test_untrusted_issuer_key_unknown_or_principal_differs() -> None:
    stranger = new_signer()
    exc = refused("untrusted-issuer", grant_of(stranger))
    assert fingerprint(stranger.public_blob) in exc.message
    # The owner's key, but the grant names someone else as issuer.
    refused("untrusted-issuer", grant_of(issuer="boss@example.com"))


def test_untrusted_issuer_whose_line_is_for_consent_only() -> None:
    trust = line(ISSUER, OWNER, 'namespaces="toolkit-consent"') + TRUST.split("\n", 1)[1]
    exc = refused("untrusted-issuer", grant_of(), trust)
    assert "not trusted for namespace 'toolkit-grant'" in exc.message


def test_untrusted_issuer_whose_line_names_no_namespaces() -> None:
    """OpenSSH trusts such a line for everything; a grant's issuer must be named for grants."""
    from toolkit.grants.check import can_issue

    trust = line(ISSUER, OWNER, "") + TRUST.split("\n", 1)[1]
    exc = refused("untrusted-issuer", grant_of(), trust)
    assert 'names no namespaces: an issuer\'s line must say namespaces="toolkit-grant"' in (
        exc.message
    )
    assert not can_issue(AllowedSigners.from_text(line(ISSUER, OWNER, "")))
    assert can_issue(AllowedSigners.from_text(TRUST))


def test_untrusted_issuer_whose_line_has_expired_or_not_started() -> None:
    before = line(ISSUER, OWNER, f'namespaces="{NAMESPACE}",valid-before="20261203185959Z"')
    refused("untrusted-issuer", grant_of(), before + line(TECH, ALICE))
    assert check(grant_of(), before + line(TECH, ALICE), now=NOW) == ISSUER
    after = line(ISSUER, OWNER, f'namespaces="{NAMESPACE}",valid-after="20261203200000Z"')
    refused("untrusted-issuer", grant_of(), after + line(TECH, ALICE))


def _cert_signer(
    ca: ed25519.Ed25519PrivateKey, principal: str, key: ed25519.Ed25519PrivateKey | None = None
) -> KeySigner:
    """A key (new by default) with a user certificate from ``ca`` naming ``principal``."""
    key = key or ed25519.Ed25519PrivateKey.generate()
    cert = (
        serialization.SSHCertificateBuilder()
        .public_key(key.public_key())
        .type(serialization.SSHCertificateType.USER)
        .valid_principals([principal.encode()])
        .valid_after(0)
        .valid_before(2**62)
        .key_id(b"owner-cert")
        .sign(ca)
    )
    return KeySigner(key, base64.b64decode(cert.public_bytes().split()[1]))


def test_a_cert_authority_issuer_works_and_its_certificate_must_name_the_issuer() -> None:
    ca = ed25519.Ed25519PrivateKey.generate()
    ca_line = line(
        "*@example.com", blob_of(ca.public_key()), f'cert-authority,namespaces="{NAMESPACE}"'
    )
    trust = ca_line + line(TECH, ALICE, 'namespaces="toolkit-consent"')
    assert check(grant_of(_cert_signer(ca, ISSUER)), trust) == ISSUER
    refused("untrusted-issuer", grant_of(_cert_signer(ca, "someone@example.com")), trust)
    other_ca = ed25519.Ed25519PrivateKey.generate()
    refused("untrusted-issuer", grant_of(_cert_signer(other_ca, ISSUER)), trust)


def test_the_window() -> None:
    grant = grant_of()
    exc = refused("not-yet-valid", grant, now=NOW - timedelta(seconds=1))
    assert "2026-12-03T18:00:00Z" in exc.message
    assert check(grant, now=NOW) == ISSUER
    assert check(grant, now=grant.not_after) == ISSUER
    exc = refused("expired", grant, now=grant.not_after + timedelta(seconds=1))
    assert "expired at 2026-12-04T02:00:00Z" in exc.message


def test_the_host_by_fingerprint_or_by_name() -> None:
    other = new_signer().public_blob
    exc = refused("other-host", grant_of(), host_key=other)
    assert fingerprint(other) in exc.message
    by_name = grant_of(hosts=["web-01", "web-02"])
    assert check(by_name, host_key=other, names={"db-01", "web-02"}) == ISSUER
    refused("other-host", by_name, host_key=other, names={"db-01"})
    refused("other-host", by_name, host_key=other)


def test_the_technician_named_by_key() -> None:
    grant = grant_of(technician=public_line(ALICE.public_blob))
    # Named by key, no trust line is needed for the technician.
    assert (
        check(
            grant,
            line(ISSUER, OWNER, f'namespaces="{NAMESPACE}"'),
            technician_email="anyone@example.com",
        )
        == ISSUER
    )
    mallory = new_signer()
    exc = refused("other-technician", grant, technician_key=mallory.public_blob)
    assert fingerprint(ALICE.public_blob) in exc.message


def test_the_technician_named_by_principal_needs_trust_for_consent() -> None:
    grant = grant_of()
    refused("other-technician", grant, technician_email="bob@example.com")
    mallory = new_signer()
    exc = refused("other-technician", grant, technician_key=mallory.public_blob)
    assert "does not vouch" in exc.message
    # A line for the technician that is for grants only does not vouch for consent.
    grants_only = line(ISSUER, OWNER, f'namespaces="{NAMESPACE}"') + line(
        TECH, ALICE, f'namespaces="{NAMESPACE}"'
    )
    refused("other-technician", grant, grants_only)
    # And a line for consent only cannot issue grants (the technician signing their own).
    refused("untrusted-issuer", grant_of(ALICE, issuer=TECH))


def test_the_ticket() -> None:
    exc = refused("other-ticket", grant_of(), ticket="T-18")
    assert "ticket T-17, not T-18" in exc.message


def test_the_first_failing_check_is_the_reason() -> None:
    stale = grant_of()
    late = stale.not_after + timedelta(days=1)
    refused("expired", stale, now=late, host_key=new_signer().public_blob, ticket="x")
    refused("other-host", stale, host_key=new_signer().public_blob, ticket="x")
    refused("other-technician", stale, technician_email="bob@example.com", ticket="x")


def test_the_ledger_revoked_and_used_up(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "grants")
    grant = grant_of(uses=2)
    for n in (1, 2):
        assert check(grant, ledger=ledger) == ISSUER
        use = ledger.spend(grant, technician=TECH, ticket="T-17", session="s", peer="p", now=NOW)
        assert use.number == n
    exc = refused("used-up", grant, ledger=ledger)
    assert "2 of 2 uses" in exc.message
    other = grant_of()
    assert ledger.revoke(other.id, reason="left the company", now=NOW) is True
    exc = refused("revoked", other, ledger=ledger)
    assert "revoked on this host at 2026-12-03T18:00:00Z" in exc.message


def test_a_certificate_is_not_a_technician_key_line_but_may_present_the_named_key() -> None:
    from toolkit.grants import GrantError

    ca = ed25519.Ed25519PrivateKey.generate()
    certified = _cert_signer(ca, TECH)
    with pytest.raises(GrantError, match="not a certificate"):
        grant_of(technician=public_line(certified.public_blob))
    # A grant naming a plain key accepts that key presented in a certificate, and no other.
    key = ed25519.Ed25519PrivateKey.generate()
    grant = grant_of(technician=public_line(blob_of(key.public_key())))
    in_cert = _cert_signer(ca, "anyone@example.com", key)
    assert check(grant, technician_key=in_cert.public_blob) == ISSUER
    refused("other-technician", grant, technician_key=certified.public_blob)


def test_before_connecting_refuses_only_a_fix_the_grant_cannot_cover() -> None:
    """The technician's side refuses what would spend a use on every host for nothing."""
    from toolkit.errors import UsageError
    from toolkit.grants.check import before_connecting

    named = grant_of()
    before_connecting(named, fix="restart-unit")
    with pytest.raises(
        UsageError, match=r"does not name the fix flush-dns \(it names restart-unit"
    ):
        before_connecting(named, fix="flush-dns")
    before_connecting(grant_of(procedures=[], scopes=["fixes"]), fix="flush-dns")
    with pytest.raises(UsageError, match="it names no fix"):
        before_connecting(grant_of(procedures=[], scopes=["diagnostics"]), fix="flush-dns")


def test_an_untrusted_issuer_refusal_keeps_the_agents_own_path_to_itself() -> None:
    trust = AllowedSigners.from_text(TRUST, "/etc/toolkit/grant_issuers")
    with pytest.raises(GrantRefused) as refused:
        check_grant(
            grant_of(new_signer()), trust=trust, technician_key=ALICE.public_blob,
            technician_email=TECH, ticket="T-17", host_key=b"", names=["web-01"], now=NOW,
        )  # fmt: skip
    assert "the trust file does not trust" in refused.value.message
    assert "/etc/toolkit" not in refused.value.message
