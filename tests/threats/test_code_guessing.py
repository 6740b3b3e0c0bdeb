"""Threat: someone guesses the one-time code, online, as often and as fast as they can.

DESIGN.md: the code expires, works once, and is burned after 3 wrong tries;
each online guess costs one of them and nothing lets a guesser test codes
offline. With 10^9 codes and 3 tries, one code falls to a guesser with
probability 3 in a billion.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.unit.consent.fakes import (
    DIGITS,
    GROUPED,
    WRONG,
    Pair,
    make_pair,
    new_agent,
    new_tech,
    state,
)
from toolkit.consent import (
    AgentHandshake,
    AgentState,
    AutoApprove,
    CodeBurned,
    CodeExpired,
    CodeState,
    CodeUsed,
    ConsentError,
    Decision,
    MalformedMessage,
    Scope,
    WrongCode,
)


def guess(agent: AgentHandshake, typed: str, pair: Pair) -> tuple[str, str, ConsentError]:
    """One online guess: the agent's challenge, its notice, and the refusal it raised."""
    challenge = agent.challenge()
    answer = new_tech(pair, typed).respond(challenge)
    with pytest.raises(ConsentError) as info:
        agent.receive_response(answer)
    return challenge, agent.notice() or "", info.value


def test_three_wrong_codes_burn_it() -> None:
    p = make_pair()
    left = []
    for wrong in ("111111111", "222222222", "333333333"):
        _, _, err = guess(new_agent(p), wrong, p)
        assert isinstance(err, WrongCode)
        left.append(err.tries_left)
    assert left == [2, 1, 0]
    assert state(p.otc) is CodeState.BURNED


def test_the_right_code_after_burning_is_refused() -> None:
    p = make_pair()
    for _ in range(3):
        guess(new_agent(p), WRONG, p)
    with pytest.raises(CodeBurned):
        p.agent.challenge()
    assert json.loads(p.agent.notice() or "")["reason"] == "burned"
    # ...even in a handshake that started before the third wrong try
    q = make_pair()
    early = new_agent(q)
    legit = new_tech(q).respond(early.challenge())
    for _ in range(3):
        guess(new_agent(q), WRONG, q)
    with pytest.raises(CodeBurned):
        early.receive_response(legit)


def test_parallel_guesses_each_cost_a_try() -> None:
    p = make_pair()
    agents = [new_agent(p) for _ in range(5)]
    answers = [new_tech(p, f"{n}00000000").respond(a.challenge()) for n, a in enumerate(agents)]
    outcomes = []
    for agent, answer in zip(agents, answers, strict=True):
        with pytest.raises(ConsentError) as info:
            agent.receive_response(answer)
        outcomes.append(type(info.value).__name__)
    assert outcomes == ["WrongCode", "WrongCode", "WrongCode", "CodeBurned", "CodeBurned"]


def test_malformed_answers_cost_tries_too() -> None:
    p = make_pair()
    for _ in range(3):
        agent = new_agent(p)
        agent.challenge()
        with pytest.raises(MalformedMessage):
            agent.receive_response('{"v":1}')
    assert state(p.otc) is CodeState.BURNED


def test_an_expired_code_is_refused() -> None:
    p = make_pair()
    p.clock.now += 600
    with pytest.raises(CodeExpired):
        p.agent.challenge()
    notice = p.agent.notice() or ""
    assert json.loads(notice)["reason"] == "expired"
    with pytest.raises(CodeExpired):
        p.tech.respond(notice)  # the technician is told why


def test_an_expired_code_is_refused_mid_handshake() -> None:
    p = make_pair()
    answer = p.tech.respond(p.agent.challenge())
    p.clock.now += 600
    with pytest.raises(CodeExpired):
        p.agent.receive_response(answer)
    assert p.otc.tries_left == 3


def test_a_reused_code_is_refused() -> None:
    p = make_pair()
    request = p.agent.receive_response(p.tech.respond(p.agent.challenge()))
    p.tech.finish(p.agent.approved(request.grant()))
    p.agent.receive_ack("")
    again = new_agent(p)
    with pytest.raises(CodeUsed):
        again.challenge()
    notice = again.notice() or ""
    with pytest.raises(CodeUsed):
        new_tech(p).respond(notice)


def test_a_guesser_learns_only_wrong() -> None:
    p = make_pair()
    seen = [guess(new_agent(p), wrong, p) for wrong in ("111111111", "987654321")]
    (c1, n1, e1), (c2, n2, e2) = seen
    # The challenge is one SPAKE2 message: same shape every time, fresh each time.
    assert json.loads(c1).keys() == json.loads(c2).keys() == {"v", "type", "pake"}
    assert len(c1) == len(c2) and c1 != c2
    # The answer to a wrong guess is the same notice whatever the guess was;
    # only the count of tries left moves. No MAC, nothing derived from the key.
    assert json.loads(n1) == {"v": 1, "type": "refused", "reason": "wrong-code", "tries_left": 2}
    assert json.loads(n2) == {"v": 1, "type": "refused", "reason": "wrong-code", "tries_left": 1}
    assert n1.replace('"tries_left":2', "") == n2.replace('"tries_left":1', "")
    assert type(e1) is type(e2) is WrongCode
    assert e1.message.replace("2 tries", "N") == e2.message.replace("1 try", "N")


def test_a_guesser_never_gets_the_agent_confirmation() -> None:
    # The agent's MAC would let a guesser test every code offline; it is only
    # released after the technician's MAC checked out.
    p = make_pair(typed=WRONG)
    answer = p.tech.respond(p.agent.challenge())
    with pytest.raises(WrongCode):
        p.agent.receive_response(answer)
    with pytest.raises(WrongCode):
        p.agent.approved(Decision(True, frozenset({Scope.DIAGNOSTICS})))
    assert state(p.agent) is AgentState.REFUSED
    assert "confirm" not in (p.agent.notice() or "")


def test_repeating_a_refused_answer_costs_nothing_more() -> None:
    p = make_pair(typed=WRONG)
    answer = p.tech.respond(p.agent.challenge())
    for _ in range(5):
        with pytest.raises(WrongCode):
            p.agent.receive_response(answer)
    assert p.otc.tries_left == 2


def test_the_code_never_appears_in_messages_errors_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        ok = make_pair()
        challenge = ok.agent.challenge()
        answer = ok.tech.respond(challenge)
        request = ok.agent.receive_response(answer)
        round2 = ok.agent.approved(AutoApprove().ask(request))
        consent = ok.tech.finish(round2)
        texts += [challenge, answer, round2, repr(request), repr(consent), repr(ok.otc)]
        texts += [json.dumps(consent.as_event()), repr(ok.agent.__dict__), repr(ok.tech.__dict__)]
        bad = make_pair(typed=WRONG)
        for _ in range(4):
            try:
                agent = new_agent(bad)
                texts.append(agent.challenge())
                texts.append(new_tech(bad, WRONG).respond(texts[-1]))
                agent.receive_response(texts[-1])
            except ConsentError as exc:
                texts += [str(exc), exc.diagnostics(), repr(exc), agent.notice() or ""]
    texts += [r.getMessage() for r in caplog.records]
    blob = "\n".join(texts)
    assert DIGITS not in blob and GROUPED not in blob
    assert DIGITS[:3] + "-" + DIGITS[3:6] not in blob
