"""Threat: someone guesses the one-time code, online, as often and as fast as they can.

DESIGN.md: the code expires, works once, and is burned after 3 wrong tries;
each online guess costs one of them and nothing lets a guesser test codes
offline. With 10^9 codes and 3 tries, one code falls to a guesser with
probability 3 in a billion. A burned code stays burned until the customer asks
for a new one, so a guesser cannot make the agent hand out codes to guess, and
each source's failed tries slow its next answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from pathlib import Path

import pytest

from tests.session_support import connect_to
from tests.threats.agent_support import running_agent
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
from toolkit.agent.server import Agent
from toolkit.consent import (
    AgentHandshake,
    AgentState,
    AutoApprove,
    CodeBook,
    CodeBurned,
    CodeExpired,
    CodeState,
    CodeUsed,
    ConsentError,
    Decision,
    MalformedMessage,
    Scope,
    WrongCode,
    parse_code,
)
from toolkit.consent._confirm import PURPOSE_PREVIOUS_CODE, code_mac
from toolkit.consent._outputs import Outputs
from toolkit.consent._pake import Pake, Side
from toolkit.consent._sources import Sources


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


# -- an old code: told it is old, at no cost to the new one -------------------------------


def book_with_an_old_code(p: Pair) -> tuple[CodeBook, str]:
    """A code book whose current code replaced another; returns it and the old digits."""
    book = CodeBook(clock=p.clock)
    old = book.current.display.reveal()
    book.fresh()
    return book, old


def agent_for(book: CodeBook, p: Pair) -> AgentHandshake:
    return AgentHandshake(book.current, p.host_key, {Scope.DIAGNOSTICS}, previous=book.previous)


def test_the_replaced_code_is_told_it_is_old_and_the_new_code_loses_no_try() -> None:
    p = make_pair()
    book, old = book_with_an_old_code(p)
    agent = agent_for(book, p)
    technician = new_tech(p, old)
    answer = technician.respond(agent.challenge())
    with pytest.raises(CodeExpired):
        agent.receive_response(answer)
    assert book.current.tries_left == 3 and book.current.state is CodeState.ACTIVE
    with pytest.raises(CodeExpired) as told:  # the technician hears why
        technician.finish(agent.notice() or "")
    assert "ask" in told.value.diagnostics().lower()
    # The new code still works, in a handshake of its own.
    again = agent_for(book, p)
    request = again.receive_response(
        new_tech(p, book.current.display.reveal()).respond(again.challenge())
    )
    assert request.name == "Alice Tech"


def test_knowing_the_old_code_buys_no_free_guess_at_the_new_one() -> None:
    """A guesser who answers the old-code PAKE with the old code and the main one with a
    guess hears "old code" whatever the guess: the current code is not even checked."""
    p = make_pair()
    book, old = book_with_an_old_code(p)
    for guess in (WRONG, book.current.display.reveal()):  # a wrong guess, then the right one
        agent = agent_for(book, p)
        challenge = agent.challenge()
        honest = json.loads(new_tech(p, guess).respond(challenge))
        # Redo the old-code part with the old code.
        out = Outputs()
        pake = Pake(Side.TECHNICIAN, out)
        pake.got_code(parse_code(old))
        theirs = base64.b64decode(json.loads(challenge)["previous"])
        pake.got_peer_message(theirs)
        assert out.key is not None and out.message is not None
        mac = code_mac(out.key, out.message, theirs, PURPOSE_PREVIOUS_CODE)
        honest["previous_pake"] = base64.b64encode(out.message).decode()
        honest["previous_mac"] = base64.b64encode(mac).decode()
        with pytest.raises(CodeExpired):
            agent.receive_response(json.dumps(honest, separators=(",", ":")))
    assert book.current.tries_left == 3 and book.current.state is CodeState.ACTIVE


def test_leaving_out_the_old_code_answer_costs_a_try() -> None:
    p = make_pair()
    book, _ = book_with_an_old_code(p)
    agent = agent_for(book, p)
    answer = json.loads(new_tech(p, WRONG).respond(agent.challenge()))
    del answer["previous_pake"], answer["previous_mac"]
    with pytest.raises(MalformedMessage):
        agent.receive_response(json.dumps(answer, separators=(",", ":")))
    assert book.current.tries_left == 2


def test_without_a_replaced_code_the_challenge_offers_none() -> None:
    p = make_pair()
    assert CodeBook().previous is None
    assert set(json.loads(p.agent.challenge())) == {"v", "type", "pake"}
    answer = json.loads(p.tech.respond(p.agent.challenge()))
    assert "previous_pake" not in answer and "previous_mac" not in answer


# -- over SSH: many guessers, one code -------------------------------------------------------


def test_a_flood_of_parallel_guessers_gets_three_tries_and_no_fresh_code(tmp_path: Path) -> None:
    """8 guessers for over a second: every answer is checked, three of them cost the code
    its tries, and the agent makes no new code for them to guess (it did: 21 in 20 s)."""

    async def guesser(agent: Agent, until: float, seen: list[str]) -> None:
        while time.monotonic() < until:
            try:
                await connect_to(agent, code=parse_code(WRONG))
            except ConsentError as exc:
                seen.append(type(exc).__name__)

    async def main() -> None:
        async with running_agent(tmp_path) as (agent, screen, customer):
            agent.sources = Sources(first=0.01, cap=0.02)
            seen: list[str] = []
            until = time.monotonic() + 1.5
            await asyncio.gather(*(guesser(agent, until, seen) for _ in range(8)))
            assert len(seen) > 8, seen
            assert seen.count("WrongCode") == 3 and set(seen) == {"WrongCode", "CodeBurned"}
            assert len(screen.codes) == 1 and agent.codes.current.state is CodeState.BURNED
            assert agent.sources.failed_tries() == {"127.0.0.1": 3}
            assert customer.asked == []

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_source_whose_tries_failed_waits_longer_each_time(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_agent(tmp_path) as (agent, _, _):
            agent.sources = Sources(first=0.2, cap=10.0)
            took = []
            for _ in range(3):
                start = time.monotonic()
                with pytest.raises(WrongCode):
                    await connect_to(agent, code=parse_code(WRONG))
                took.append(time.monotonic() - start)
            # The answer after one failure waited 0.2 s, after two 0.4 s.
            assert took[1] >= took[0] + 0.15 and took[2] >= took[0] + 0.35, took

    asyncio.run(asyncio.wait_for(main(), 60))
