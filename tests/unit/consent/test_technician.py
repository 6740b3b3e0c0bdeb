"""TechnicianHandshake driven input by input: both code orders, notices, bad agents."""

from __future__ import annotations

import base64
import json

import pytest

from tests.unit.consent.fakes import (
    DIGITS,
    GROUPED,
    Event,
    RecordingSigner,
    host_key,
    make_pair,
    state,
)
from tests.unit.consent.test_messages import BAD_AGENT_MESSAGES
from toolkit.consent import (
    CodeBurned,
    CodeExpired,
    CodeFormatError,
    CodeUsed,
    ConfirmationFailed,
    Declined,
    HandshakeOutOfOrder,
    IdentityProofFailed,
    MalformedMessage,
    Scope,
    TechnicianHandshake,
    TechnicianState,
    WrongCode,
    parse_code,
)
from toolkit.consent._messages import Confirm, Notice, PakeChallenge
from toolkit.errors import UsageError
from toolkit.secrets import Secret

D, F = Scope.DIAGNOSTICS, Scope.FIXES


def tech(
    events: list[Event], code: str | None = DIGITS, overrides: dict[str, object] | None = None
) -> TechnicianHandshake:
    args: dict[str, object] = {
        "name": "Alice Tech",
        "email": "alice@example.com",
        "ticket": "T-1",
        "scopes": ["diagnostics"],
    }
    args.update(overrides or {})
    return TechnicianHandshake(
        RecordingSigner(events),
        host_key(),
        code=parse_code(code) if code else None,
        **args,  # type: ignore[arg-type]
    )


def test_code_first() -> None:
    p = make_pair()
    assert state(p.tech) is TechnicianState.HAVE_CODE and not p.tech.needs_code
    p.tech.receive_challenge(p.agent.challenge())
    assert state(p.tech) is TechnicianState.READY
    assert p.events == [("code.begin", "ok")]  # nothing signed before the answer is asked for
    answer = p.tech.response()
    assert p.events[-1] == ("signer.sign", b"SSHSIG")
    assert state(p.tech) is TechnicianState.RESPONDED
    assert p.tech.response() == answer  # non-event: the same answer


def test_reversed_challenge_first_then_typed_code() -> None:
    p = make_pair(typed=None)
    assert state(p.tech) is TechnicianState.START and p.tech.needs_code
    p.tech.receive_challenge(p.agent.challenge())
    assert state(p.tech) is TechnicianState.HAVE_CHALLENGE and p.tech.needs_code
    with pytest.raises(HandshakeOutOfOrder, match="code"):
        p.tech.response()
    p.tech.provide_code(Secret(GROUPED))  # as typed, dashes and all
    assert state(p.tech) is TechnicianState.READY
    request = p.agent.receive_response(p.tech.response())
    consent = p.tech.finish(p.agent.approved(request.grant()))
    assert consent.granted == {D}
    assert state(p.tech) is TechnicianState.DONE


def test_bad_code_format_changes_nothing() -> None:
    p = make_pair(typed=None)
    with pytest.raises(CodeFormatError):
        p.tech.provide_code(Secret("12345"))
    assert state(p.tech) is TechnicianState.START


def test_second_code_and_second_challenge_are_ignored() -> None:
    p = make_pair()
    challenge = p.agent.challenge()
    p.tech.provide_code(Secret("111111111"))
    p.tech.receive_challenge(challenge)
    p.tech.receive_challenge(PakeChallenge(b"B" + b"\x02" * 32).encode())
    p.tech.provide_code(Secret("111111111"))
    p.agent.receive_response(p.tech.response())  # the first code and challenge counted


@pytest.mark.parametrize(
    "reason, error",
    [
        ("burned", CodeBurned),
        ("expired", CodeExpired),
        ("used", CodeUsed),
        ("declined", Declined),
        ("identity", IdentityProofFailed),
    ],
)
def test_notice_instead_of_a_challenge(reason: str, error: type[Exception]) -> None:
    events: list[Event] = []
    t = tech(events)
    with pytest.raises(error):
        t.respond(Notice(reason, 0).encode())
    assert state(t) is TechnicianState.REFUSED
    assert events == []  # nothing signed, nothing sent
    with pytest.raises(error):
        t.respond(PakeChallenge(b"B" + bytes(32)).encode())


@pytest.mark.parametrize("name", sorted(BAD_AGENT_MESSAGES))
def test_malformed_challenge(name: str) -> None:
    events: list[Event] = []
    t = tech(events)
    with pytest.raises(MalformedMessage):
        t.receive_challenge(BAD_AGENT_MESSAGES[name])
    assert state(t) is TechnicianState.REFUSED
    assert events == []


@pytest.mark.parametrize("typed", [DIGITS, None])
def test_invalid_agent_point_is_refused_in_either_order(typed: str | None) -> None:
    events: list[Event] = []
    t = tech(events, code=typed)
    bad = PakeChallenge(b"B" + b"\x02" * 32).encode()
    if typed:
        with pytest.raises(MalformedMessage, match="SPAKE2"):
            t.receive_challenge(bad)
    else:
        t.receive_challenge(bad)
        with pytest.raises(MalformedMessage, match="SPAKE2"):
            t.provide_code(Secret(DIGITS))
    assert state(t) is TechnicianState.REFUSED
    assert events == []


def test_wrong_code_notice_in_round_two() -> None:
    p = make_pair(typed="111111111")
    answer = p.tech.respond(p.agent.challenge())
    with pytest.raises(WrongCode):
        p.agent.receive_response(answer)
    with pytest.raises(WrongCode) as info:
        p.tech.finish(p.agent.notice() or "")
    assert info.value.tries_left == 2
    assert "2 tries left" in info.value.message
    assert state(p.tech) is TechnicianState.REFUSED
    assert p.tech.error is info.value


def test_last_wrong_try_says_the_code_is_burned() -> None:
    p = make_pair(typed="111111111")
    for _ in range(2):
        p.otc.failed()
    p.tech.respond(p.agent.challenge())
    with pytest.raises(WrongCode):
        p.agent.receive_response(p.tech.response())
    with pytest.raises(WrongCode, match="burned") as info:
        p.tech.finish(p.agent.notice() or "")
    assert info.value.tries_left == 0


def test_forged_agent_mac_is_a_confirmation_failure() -> None:
    p = make_pair()
    p.agent.receive_response(p.tech.respond(p.agent.challenge()))
    forged = Confirm(frozenset({D}), bytes(32)).encode()
    with pytest.raises(ConfirmationFailed) as info:
        p.tech.finish(forged)
    assert "man-in-the-middle" in info.value.diagnostics()
    assert state(p.tech) is TechnicianState.REFUSED


def test_changed_grant_is_a_confirmation_failure() -> None:
    p = make_pair(offered=(D, F), requested=("diagnostics", "fixes"))
    request = p.agent.receive_response(p.tech.respond(p.agent.challenge()))
    real = json.loads(p.agent.approved(request.grant({D})))
    real["granted"] = ["diagnostics", "fixes"]
    with pytest.raises(ConfirmationFailed):
        p.tech.finish(json.dumps(real))


def test_grant_beyond_the_request_is_refused_even_with_a_valid_mac() -> None:
    # Only a broken agent does this (its MAC covers the grant); refuse anyway.
    from toolkit.consent._confirm import agent_mac

    p = make_pair()
    p.agent.receive_response(p.tech.respond(p.agent.challenge()))
    conf = p.tech._confirm  # the technician's own view of the transcript and key
    assert conf is not None
    granted = frozenset({D, Scope.SHELL})
    mac = agent_mac(conf._key, conf.transcript, granted)
    with pytest.raises(MalformedMessage, match="nobody asked for"):
        p.tech.finish(Confirm(granted, mac).encode())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        PakeChallenge(b"B" + bytes(32)).encode(),
        json.dumps({"v": 1, "type": "confirm", "granted": ["diagnostics"], "mac": "AA=="}),
        json.dumps(
            {
                "v": 1,
                "type": "confirm",
                "granted": ["diagnostics"],
                "mac": base64.b64encode(bytes(32)).decode(),
                "extra": 1,
            }
        ),
    ],
)
def test_malformed_round_two(text: str) -> None:
    p = make_pair()
    p.agent.receive_response(p.tech.respond(p.agent.challenge()))
    with pytest.raises(MalformedMessage):
        p.tech.finish(text)
    assert state(p.tech) is TechnicianState.REFUSED


def test_round_one_again_after_answering_is_refused() -> None:
    p = make_pair()
    challenge = p.agent.challenge()
    p.tech.respond(challenge)
    with pytest.raises(MalformedMessage, match="twice"):
        p.tech.respond(challenge)
    assert state(p.tech) is TechnicianState.REFUSED


def test_done_swallows_late_inputs() -> None:
    p = make_pair()
    request = p.agent.receive_response(p.tech.respond(p.agent.challenge()))
    round2 = p.agent.approved(request.grant())
    consent = p.tech.finish(round2)
    assert p.tech.finish(round2) is consent
    assert p.tech.finish("junk") is consent
    p.tech.provide_code(Secret(DIGITS))
    p.tech.receive_challenge("junk")
    assert state(p.tech) is TechnicianState.DONE


def test_contract_violations_are_bugs() -> None:
    events: list[Event] = []
    t = tech(events)
    with pytest.raises(HandshakeOutOfOrder):
        t.response()
    with pytest.raises(HandshakeOutOfOrder):
        t.finish("{}")
    assert state(t) is TechnicianState.HAVE_CODE


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", ""),
        ("name", "Alice\x1b[31m"),
        ("name", "A" * 200),
        ("email", "alice"),
        ("ticket", "T-1\n"),
        ("scopes", []),
        ("scopes", ["root"]),
    ],
)
def test_what_the_customer_would_see_is_checked_up_front(field: str, value: object) -> None:
    with pytest.raises(UsageError):
        tech([], overrides={field: value})


def test_host_key_is_required() -> None:
    with pytest.raises(ValueError):
        TechnicianHandshake(
            RecordingSigner([]),
            b"",
            name="A",
            email="a@example.com",
            ticket="T",
            scopes=["diagnostics"],
        )
