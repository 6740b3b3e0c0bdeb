"""Consent by a grant: both machines driven against each other, with a recording admit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.consent.fakes import host_key, new_signer
from toolkit.consent import AgentHandshake, CodeBook, Scope, TechnicianHandshake, parse_code
from toolkit.consent._grant import (
    Admission,
    AgentGrantHandshake,
    GrantAgentState,
    GrantClaim,
    TechnicianGrantHandshake,
    decode_grant_answer,
    is_grant_answer,
)
from toolkit.consent._messages import MessageError, decode_challenge
from toolkit.consent.errors import (
    ConsentError,
    GrantsNotTaken,
    GrantsOnly,
    IdentityProofFailed,
    MalformedMessage,
)
from toolkit.grants import Grant, issue
from toolkit.grants.check import GrantRefused
from toolkit.identity.keys import fingerprint, public_line
from toolkit.identity.signer import KeySigner

NOW = datetime.now(UTC).replace(microsecond=0)
BOTH = frozenset({Scope.DIAGNOSTICS, Scope.FIXES})


def a_grant(owner: KeySigner, technician: KeySigner, host: bytes) -> Grant:
    return issue(
        owner,
        issuer="owner@example.com",
        technician=public_line(technician.public_blob),
        procedures=[],
        scopes=["diagnostics"],
        hosts=[fingerprint(host)],
        ticket="T-1",
        not_before=NOW - timedelta(minutes=1),
        not_after=NOW + timedelta(hours=1),
        uses=2,
    )


@dataclass
class Admit:
    """Records each claim; says yes (use 1 of 2, diagnostics) unless told to refuse."""

    refuse: ConsentError | None = None
    claims: list[GrantClaim] = field(default_factory=list)

    def __call__(self, claim: GrantClaim) -> Admission:
        self.claims.append(claim)
        if self.refuse is not None:
            raise self.refuse
        grant = Grant.parse(claim.grant)
        return Admission(grant, grant.issuer, 1, 2, claim.requested & {Scope.DIAGNOSTICS})


@dataclass
class Pair:
    agent: AgentGrantHandshake
    tech: TechnicianGrantHandshake
    admit: Admit
    host: bytes
    tech_grant_sha256: str


def pair(*, seen: bytes | None = None, admit: Admit | None = None) -> Pair:
    host = host_key()
    technician = new_signer()
    grant = a_grant(new_signer(), technician, host)
    admit = admit or Admit()
    agent = AgentGrantHandshake(host, admit)
    tech = TechnicianGrantHandshake(
        technician,
        seen or host,
        grant,
        name="Alice Tech",
        email="alice@example.com",
        ticket="T-1",
        scopes=BOTH,
    )
    return Pair(agent, tech, admit, host, grant.sha256)


def test_a_grant_passes_consent_and_both_sides_record_it() -> None:
    p = pair()
    answer = p.tech.respond(p.agent.challenge())
    round2 = p.agent.receive_grant(answer)
    assert json.loads(round2) == {
        "v": 1,
        "type": "granted",
        "granted": ["diagnostics"],
        "use": 1,
        "uses": 2,
    }
    theirs = p.tech.finish(round2)
    ours = p.agent.receive_ack("")
    assert p.agent.state is GrantAgentState.DONE
    for consent in (theirs, ours):
        assert consent.method == "grant"
        assert consent.granted == {Scope.DIAGNOSTICS}
        assert consent.grant is not None
        event = consent.as_event()["grant"]
        assert isinstance(event, dict)
        assert event["text"].startswith("toolkit-grant v1\nid: g-")
        assert (event["use"], event["uses"]) == (1, 2)
    assert ours.grant is not None and theirs.grant is not None
    assert ours.grant.verdict == "accepted by owner@example.com"
    assert ours.grant.sha256 == theirs.grant.sha256 == p.tech_grant_sha256
    (claim,) = p.admit.claims
    assert (claim.email, claim.ticket, claim.requested) == ("alice@example.com", "T-1", BOTH)


def test_the_nonce_rides_beside_the_pake_when_the_code_is_taken_too() -> None:
    p = pair()
    p.agent.challenge()
    book = CodeBook()
    code = AgentHandshake(book.current, p.host, {Scope.DIAGNOSTICS}, nonce=p.agent.nonce)
    challenge = decode_challenge(code.challenge())
    assert getattr(challenge, "nonce", None) == p.agent.nonce
    # The technician with a grant answers the PAKE challenge with its grant.
    answer = p.tech.respond(code.challenge())
    assert decode_grant_answer(answer).ticket == "T-1"
    p.agent.receive_grant(answer)


def test_another_host_key_seen_fails_the_proof_and_the_grant_is_not_looked_at() -> None:
    p = pair(seen=host_key())  # someone in the middle showed its own host key
    answer = p.tech.respond(p.agent.challenge())
    with pytest.raises(IdentityProofFailed):
        p.agent.receive_grant(answer)
    assert p.admit.claims == []
    assert json.loads(p.agent.notice() or "")["reason"] == "identity"


def test_a_refusal_travels_with_its_reason_and_detail() -> None:
    refusal = GrantRefused("expired", "The grant g-x expired at 2026-12-03T18:00:00Z.")
    p = pair(admit=Admit(refuse=refusal))
    answer = p.tech.respond(p.agent.challenge())
    with pytest.raises(GrantRefused):
        p.agent.receive_grant(answer)
    notice = p.agent.notice()
    assert json.loads(notice or "") == {
        "v": 1,
        "type": "refused",
        "reason": "grant-refused",
        "tries_left": 0,
        "detail": "expired: The grant g-x expired at 2026-12-03T18:00:00Z.",
    }
    with pytest.raises(GrantRefused) as raised:
        p.tech.finish(notice or "")
    assert raised.value.reason == "expired"
    assert "expired at 2026-12-03T18:00:00Z" in raised.value.message
    assert p.agent.notice() is None  # said once


def test_a_detail_with_escapes_reaches_the_technician_printable() -> None:
    p = pair(admit=Admit(refuse=GrantRefused("revoked", "Revoked \x1b[31mred\u202e.")))
    answer = p.tech.respond(p.agent.challenge())
    with pytest.raises(GrantRefused):
        p.agent.receive_grant(answer)
    with pytest.raises(GrantRefused) as raised:
        p.tech.finish(p.agent.notice() or "")
    assert "\x1b" not in raised.value.message and "\u202e" not in raised.value.message


def test_a_malformed_grant_answer_is_refused_without_a_try() -> None:
    p = pair()
    p.agent.challenge()
    with pytest.raises(MalformedMessage) as raised:
        p.agent.receive_grant('{"v":1,"type":"grant","grant":"AA=="}')
    assert raised.value.tries_left is None
    assert p.admit.claims == []


def test_an_agent_without_grants_is_told_apart_from_one_without_codes() -> None:
    p = pair()
    book = CodeBook()
    code_only = AgentHandshake(book.current, p.host, {Scope.DIAGNOSTICS})
    with pytest.raises(GrantsNotTaken):
        p.tech.respond(code_only.challenge())
    tech = TechnicianHandshake(
        new_signer(),
        p.host,
        name="Alice Tech",
        email="alice@example.com",
        ticket="T-1",
        scopes=["diagnostics"],
        code=parse_code(book.current.display.reveal()),
    )
    with pytest.raises(GrantsOnly):
        tech.respond(p.agent.challenge())


def test_grant_messages_are_parsed_strictly() -> None:
    for bad in ('{"v":1,"type":"grant"}', "x" * (70 * 1024), '{"v":1,"type":"granted"}'):
        with pytest.raises(MessageError):
            decode_grant_answer(bad)


def test_a_grant_answer_is_told_from_the_codes_by_its_type_not_its_layout() -> None:
    p = pair()
    answer = json.loads(p.tech.respond(p.agent.challenge()))
    reordered = json.dumps(dict(reversed(list(answer.items()))), separators=(",", ":"))
    assert is_grant_answer(reordered)
    assert not is_grant_answer('{"v":1,"type":"response"}')
    assert not is_grant_answer("not json")
    p.agent.receive_grant(reordered)  # accepted as it is: only the JSON matters
