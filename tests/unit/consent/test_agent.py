"""AgentHandshake driven input by input, with a recording code, signer and trust."""

from __future__ import annotations

import json

import pytest

from tests.unit.consent.fakes import (
    WRONG,
    Pair,
    RecordingSigner,
    make_pair,
    new_agent,
    new_signer,
    new_tech,
    state,
)
from tests.unit.consent.test_messages import BAD_RESPONSES
from toolkit.consent import (
    AgentHandshake,
    AgentState,
    CodeBurned,
    CodeExpired,
    CodeState,
    CodeUsed,
    Decision,
    Declined,
    HandshakeOutOfOrder,
    IdentityProofFailed,
    MalformedMessage,
    Scope,
    SessionNotStarted,
    TechnicianHandshake,
    WrongCode,
    parse_code,
    trust_from_allowed_signers,
)
from toolkit.consent._messages import Response, decode_response
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.identity.keys import fingerprint, public_line

D, F, S = Scope.DIAGNOSTICS, Scope.FIXES, Scope.SHELL


def round1(p: Pair) -> str:
    return p.tech.respond(p.agent.challenge())


def test_happy_path_events() -> None:
    p = make_pair()
    challenge = p.agent.challenge()
    assert p.events == [("code.begin", "ok")]
    assert state(p.agent) is AgentState.AWAITING_RESPONSE
    assert json.loads(challenge).keys() == {"v", "type", "pake"}

    answer = p.tech.respond(challenge)
    assert p.events[1:] == [("signer.sign", b"SSHSIG")]
    del p.events[:]

    request = p.agent.receive_response(answer)
    assert p.events == [
        ("code.begin", "ok"),
        ("code.succeeded",),
        ("trust", fingerprint(p.signer.public_blob), "alice@example.com"),
    ]
    assert state(p.agent) is AgentState.AWAITING_APPROVAL
    assert state(p.otc) is CodeState.CONSUMED
    assert (request.name, request.email, request.ticket) == (
        "Alice Tech",
        "alice@example.com",
        "T-1",
    )
    assert request.key == p.signer.public_blob
    assert request.fingerprint == fingerprint(p.signer.public_blob)
    assert request.requested == {D} and request.offered == {D, F}
    assert request.trusted is False
    assert p.agent.request is request

    del p.events[:]
    round2 = p.agent.approved(request.grant())
    assert state(p.agent) is AgentState.AWAITING_ACK
    assert json.loads(round2)["granted"] == ["diagnostics"]
    consent = p.tech.finish(round2)
    agreed = p.agent.receive_ack("")
    assert state(p.agent) is AgentState.DONE
    assert p.events == []
    assert consent.granted == agreed.granted == {D}
    assert agreed.trusted is False and consent.trusted is None
    assert consent.host_key == agreed.host_key == p.host_key
    assert agreed.key == consent.key == p.signer.public_blob


def test_wrong_code_costs_one_try_and_says_so_once() -> None:
    p = make_pair(typed=WRONG)
    answer = round1(p)
    del p.events[:]
    with pytest.raises(WrongCode) as info:
        p.agent.receive_response(answer)
    assert info.value.tries_left == 2
    assert "2 tries left" in info.value.message
    assert p.events == [("code.begin", "ok"), ("code.failed", 2)]
    assert state(p.agent) is AgentState.REFUSED
    assert p.agent.error is info.value
    assert json.loads(p.agent.notice() or "") == {
        "v": 1,
        "type": "refused",
        "reason": "wrong-code",
        "tries_left": 2,
    }
    assert state(p.agent) is AgentState.CLOSED
    assert p.agent.notice() is None
    # the same answer again, or any later input, repeats the refusal at no cost
    with pytest.raises(WrongCode):
        p.agent.receive_response(answer)
    with pytest.raises(WrongCode):
        p.agent.approved(Decision(True, frozenset({D})))
    with pytest.raises(WrongCode):
        p.agent.receive_ack("")
    with pytest.raises(WrongCode):
        p.agent.challenge()
    p.agent.refused()
    assert p.events == [("code.begin", "ok"), ("code.failed", 2)]
    assert p.otc.tries_left == 2


@pytest.mark.parametrize("name", sorted(BAD_RESPONSES))
def test_malformed_answer_is_refused_and_costs_a_try(name: str) -> None:
    p = make_pair()
    p.agent.challenge()
    del p.events[:]
    with pytest.raises(MalformedMessage) as info:
        p.agent.receive_response(BAD_RESPONSES[name])
    assert info.value.tries_left == 2
    assert p.events == [("code.begin", "ok"), ("code.failed", 2)]
    assert state(p.agent) is AgentState.REFUSED
    assert json.loads(p.agent.notice() or "")["reason"] == "malformed"


def _tamper(answer: str, **fields: object) -> str:
    obj = json.loads(answer)
    obj.update(fields)
    return json.dumps(obj, separators=(",", ":"))


@pytest.mark.parametrize(
    "pake",
    [
        "QgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC",  # b"B" + not a point
        "QQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # b"A" + identity element
    ],
)
def test_bad_spake2_message_costs_a_try(pake: str) -> None:
    p = make_pair()
    answer = round1(p)
    del p.events[:]
    with pytest.raises(MalformedMessage, match="SPAKE2"):
        p.agent.receive_response(_tamper(answer, pake=pake))
    assert p.events == [("code.begin", "ok"), ("code.failed", 2)]


def test_the_agent_message_reflected_back_costs_a_try() -> None:
    p = make_pair()
    challenge = p.agent.challenge()
    answer = p.tech.respond(challenge)
    with pytest.raises(MalformedMessage):
        p.agent.receive_response(_tamper(answer, pake=json.loads(challenge)["pake"]))


def test_oversized_and_bombs_never_reach_json() -> None:
    p = make_pair()
    p.agent.challenge()
    with pytest.raises(MalformedMessage, match="larger than 16384"):
        p.agent.receive_response("[" * 20_000)


def test_multiple_prompts_answered_as_empty_costs_a_try() -> None:
    # The lead passes "" when the client answers with the wrong number of responses.
    p = make_pair()
    p.agent.challenge()
    with pytest.raises(MalformedMessage):
        p.agent.receive_response("")
    assert p.otc.tries_left == 2


@pytest.mark.parametrize(
    "spoil, error",
    [
        (lambda p: p.otc.succeeded(), CodeUsed),
        (lambda p: [p.otc.failed() for _ in range(3)], CodeBurned),
        (lambda p: setattr(p.clock, "now", p.clock.now + 600), CodeExpired),
        (lambda p: p.otc.retire(), CodeExpired),
    ],
)
def test_unusable_code_refuses_at_challenge_without_a_try(
    spoil: object, error: type[Exception]
) -> None:
    p = make_pair()
    spoil(p)  # type: ignore[operator]
    tries = p.otc.tries_left
    with pytest.raises(error):
        p.agent.challenge()
    assert state(p.agent) is AgentState.REFUSED
    assert p.events == [("code.begin", error.__name__)]
    notice = json.loads(p.agent.notice() or "")
    assert (
        notice["reason"]
        == {CodeUsed: "used", CodeBurned: "burned", CodeExpired: "expired"}[
            error  # type: ignore[index]
        ]
    )
    assert p.otc.tries_left == tries


def test_code_expiring_mid_handshake_refuses_the_right_code_without_a_try() -> None:
    p = make_pair()
    answer = round1(p)
    p.clock.now += 601
    with pytest.raises(CodeExpired):
        p.agent.receive_response(answer)
    assert p.events[-1] == ("code.begin", "CodeExpired")
    assert p.otc.tries_left == 3


def test_concurrent_attempts_share_the_tries_and_the_first_success_wins() -> None:
    p = make_pair()
    other = new_agent(p)
    guess = new_tech(p, WRONG)
    legit_challenge = p.agent.challenge()
    guess_answer = guess.respond(other.challenge())  # both wait at once: nobody is "busy"
    legit_answer = p.tech.respond(legit_challenge)
    with pytest.raises(WrongCode):
        other.receive_response(guess_answer)
    assert p.otc.tries_left == 2
    p.agent.receive_response(legit_answer)
    late = new_agent(p)
    with pytest.raises(CodeUsed):
        late.challenge()


def test_a_wrong_guess_after_someone_else_succeeded_costs_nothing() -> None:
    p = make_pair()
    other = new_agent(p)
    guess = new_tech(p, WRONG).respond(other.challenge())
    p.agent.receive_response(round1(p))
    del p.events[:]
    with pytest.raises(CodeUsed):
        other.receive_response(guess)
    assert p.events == [("code.begin", "CodeUsed")]


def test_second_answer_while_the_customer_decides_is_refused() -> None:
    p = make_pair()
    answer = round1(p)
    request = p.agent.receive_response(answer)
    del p.events[:]
    with pytest.raises(MalformedMessage, match="out of turn"):
        p.agent.receive_response(answer)  # replayed round-1 answer
    assert state(p.agent) is AgentState.REFUSED
    assert p.events == []  # the code is already used: no try to count
    with pytest.raises(MalformedMessage):
        p.agent.approved(request.grant())  # the customer's late yes is void
    assert json.loads(p.agent.notice() or "")["reason"] == "malformed"


def test_customer_declines() -> None:
    p = make_pair()
    request = p.agent.receive_response(round1(p))
    with pytest.raises(Declined):
        p.agent.approved(request.decline())
    assert state(p.agent) is AgentState.REFUSED
    notice = p.agent.notice() or ""
    assert json.loads(notice) == {"v": 1, "type": "refused", "reason": "declined", "tries_left": 0}
    with pytest.raises(Declined):
        p.tech.finish(notice)
    assert state(p.otc) is CodeState.CONSUMED


def test_refused_while_waiting_for_the_customer() -> None:
    p = make_pair()
    request = p.agent.receive_response(round1(p))
    p.agent.refused()
    assert state(p.agent) is AgentState.REFUSED
    assert isinstance(p.agent.error, Declined)
    with pytest.raises(Declined):
        p.agent.approved(request.grant())
    p.agent.refused()  # non-event


@pytest.mark.parametrize("stage", ["ready", "awaiting-response", "awaiting-ack"])
def test_abandoned_at_any_stage(stage: str) -> None:
    p = make_pair()
    if stage != "ready":
        challenge = p.agent.challenge()
    if stage == "awaiting-ack":
        p.agent.approved(p.agent.receive_response(p.tech.respond(challenge)).grant())
    p.agent.refused()
    assert state(p.agent) is AgentState.REFUSED
    assert "abandoned" in (p.agent.error.message if p.agent.error else "")
    assert p.otc.tries_left == 3


def test_approval_beyond_the_request_releases_nothing() -> None:
    p = make_pair(offered=(D,), requested=("diagnostics", "shell"))
    request = p.agent.receive_response(round1(p))
    assert request.grantable == {D}
    with pytest.raises(Declined):
        p.agent.approved(Decision(True, frozenset({S})))
    assert state(p.agent) is AgentState.REFUSED


def test_non_empty_final_answer_is_refused() -> None:
    p = make_pair()
    request = p.agent.receive_response(round1(p))
    p.agent.approved(request.grant())
    with pytest.raises(MalformedMessage):
        p.agent.receive_ack("yes")
    assert state(p.agent) is AgentState.REFUSED


def test_done_swallows_late_inputs() -> None:
    p = make_pair()
    answer = round1(p)
    request = p.agent.receive_response(answer)
    p.tech.finish(p.agent.approved(request.grant()))
    consent = p.agent.receive_ack("")
    assert p.agent.receive_ack("") is consent
    p.agent.refused()
    with pytest.raises(MalformedMessage):
        p.agent.receive_response(answer)
    assert state(p.agent) is AgentState.DONE


def test_contract_violations_are_bugs_not_refusals() -> None:
    p = make_pair()
    with pytest.raises(HandshakeOutOfOrder):
        p.agent.receive_response("{}")
    with pytest.raises(HandshakeOutOfOrder):
        p.agent.notice()
    challenge = p.agent.challenge()
    assert p.agent.challenge() == challenge  # asking again is a non-event
    with pytest.raises(HandshakeOutOfOrder):
        p.agent.approved(Decision(True, frozenset({D})))
    with pytest.raises(HandshakeOutOfOrder):
        p.agent.receive_ack("")
    assert state(p.agent) is AgentState.AWAITING_RESPONSE
    assert p.events == [("code.begin", "ok")]


def test_key_possession_is_proven() -> None:
    # Someone who knows the code names Alice's key but cannot sign with it.
    p = make_pair()
    alice = new_signer()
    liar = TechnicianHandshake(
        RecordingSigner(p.events, claim=alice.public_blob),
        p.host_key,
        name="Alice Tech",
        email="alice@example.com",
        ticket="T-1",
        scopes=["diagnostics"],
        code=parse_code("530271846"),
    )
    answer = liar.respond(p.agent.challenge())
    del p.events[:]
    with pytest.raises(IdentityProofFailed):
        p.agent.receive_response(answer)
    assert p.events == [("code.begin", "ok"), ("code.succeeded",)]
    assert state(p.otc) is CodeState.CONSUMED
    assert json.loads(p.agent.notice() or "")["reason"] == "identity"


def test_trusted_flag_comes_from_the_trust_check() -> None:
    p = make_pair(trusted=True)
    assert p.agent.receive_response(round1(p)).trusted is True


def test_trust_from_allowed_signers() -> None:
    signer = new_signer()
    line = f'alice@example.com namespaces="toolkit-consent" {public_line(signer.public_blob)}\n'
    trust = trust_from_allowed_signers(AllowedSigners.from_text(line))
    assert trust(signer.public_blob, "alice@example.com") is True
    assert trust(signer.public_blob, "mallory@example.com") is False
    assert trust(new_signer().public_blob, "alice@example.com") is False
    other_ns = AllowedSigners.from_text(line.replace("toolkit-consent", "file"))
    assert trust_from_allowed_signers(other_ns)(signer.public_blob, "alice@example.com") is False


def test_response_carries_what_the_customer_sees() -> None:
    p = make_pair(requested=("diagnostics", "fixes"))
    answer = round1(p)
    parsed = decode_response(answer)
    assert isinstance(parsed, Response)
    assert parsed.scopes == {D, F}
    assert parsed.key == p.signer.public_blob
    assert len(answer) < 1024


def test_agent_state_enum_is_exposed() -> None:
    assert AgentHandshake.State is AgentState


def test_a_session_that_cannot_start_is_one_more_notice() -> None:
    """Consent passed, but the agent cannot create its transcript: the technician hears it."""
    p = make_pair()
    request = p.agent.receive_response(round1(p))
    consent = p.tech.finish(p.agent.approved(request.grant()))
    p.agent.receive_ack("")
    p.agent.not_started()
    assert state(p.agent) is AgentState.REFUSED
    notice = p.agent.notice() or ""
    assert json.loads(notice) == {
        "v": 1,
        "type": "refused",
        "reason": "not-started",
        "tries_left": 0,
    }
    with pytest.raises(SessionNotStarted) as told:
        p.tech.finish(notice)  # the technician's side, already DONE, hears it
    assert "could not start the session" in told.value.diagnostics()
    assert told.value.exit_code == 1 and consent.granted == {D}
    p.agent.not_started()  # late: no effect
    assert p.agent.notice() is None


def test_not_started_before_consent_is_a_bug() -> None:
    p = make_pair()
    with pytest.raises(HandshakeOutOfOrder):
        p.agent.not_started()
    p.agent.challenge()
    with pytest.raises(HandshakeOutOfOrder):
        p.agent.not_started()
