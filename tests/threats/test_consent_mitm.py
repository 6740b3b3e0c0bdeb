"""Threat: a relay or network attacker in the middle of the consent handshake.

The MITM here sees and rewrites every keyboard-interactive payload. It can
terminate SSH only with its own host key (it lacks the agent's), so the
technician sees that key; both confirmation MACs cover the host key as each
side saw it and the technician's key, and the fresh PAKE messages make every
answer good for one handshake only. Where the code was right and only the
keys differ, both people are told that someone may be in the middle, with
the host key fingerprint each side saw, to compare.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.unit.consent.fakes import (
    DIGITS,
    WRONG,
    host_key,
    make_pair,
    new_agent,
    new_signer,
    state,
)
from toolkit.consent import (
    AgentHandshake,
    CodeState,
    CodeUsed,
    ConfirmationFailed,
    KeyMismatch,
    OneTimeCode,
    Scope,
    TechnicianHandshake,
    WrongCode,
    parse_code,
)
from toolkit.consent._confirm import Transcript, sign_transcript
from toolkit.consent._messages import Confirm, Notice, decode_response
from toolkit.identity.keys import fingerprint
from toolkit.secrets import Secret

D = Scope.DIAGNOSTICS


def edit(text: str, **fields: object) -> str:
    obj = json.loads(text)
    obj.update(fields)
    return json.dumps(obj, separators=(",", ":"))


def test_a_plain_relay_that_changes_nothing_is_harmless() -> None:
    # Control: a relay that forwards ciphertext (same host key end to end) works.
    p = make_pair()
    request = p.agent.receive_response(p.tech.respond(p.agent.challenge()))
    consent = p.tech.finish(p.agent.approved(request.grant()))
    assert p.agent.receive_ack("").granted == consent.granted == {D}


def test_relay_with_its_own_host_key_fails_on_both_sides_and_costs_a_try() -> None:
    mitm_host_key = host_key()
    p = make_pair(seen_host_key=mitm_host_key)
    answer = p.tech.respond(p.agent.challenge())  # relayed both ways, byte for byte
    with pytest.raises(KeyMismatch) as at_agent:
        p.agent.receive_response(answer)
    assert p.otc.tries_left == 2
    # The customer hears that the code was right and someone may be in the middle,
    # with the agent's own host key to compare.
    assert "right code" in at_agent.value.message and "middle" in at_agent.value.message
    assert fingerprint(p.host_key) in at_agent.value.message
    # The MITM cannot make the agent's confirmation: relaying the notice
    # fails the technician, who hears the same, with the key it saw.
    with pytest.raises(KeyMismatch) as at_technician:
        p.tech.finish(p.agent.notice() or "")
    told = at_technician.value.diagnostics()
    assert "middle" in told and fingerprint(mitm_host_key) in told
    assert "toolkit share shows" in told
    q = make_pair(seen_host_key=mitm_host_key)
    q.tech.respond(q.agent.challenge())  # this time the MITM keeps the answer to itself
    with pytest.raises(ConfirmationFailed) as forged:
        q.tech.finish(Confirm(frozenset({D}), bytes(32)).encode())
    assert q.otc.tries_left == 3
    assert fingerprint(mitm_host_key) in forged.value.message
    assert "middle" in forged.value.diagnostics()


def test_mitm_that_rewrites_the_mismatch_notice_into_wrong_code_still_shows_the_key() -> None:
    # The notice is not authenticated: a MITM can say "wrong code" instead. The
    # technician's error then still names the host key it saw, to compare.
    mitm_host_key = host_key()
    p = make_pair(seen_host_key=mitm_host_key)
    answer = p.tech.respond(p.agent.challenge())
    with pytest.raises(KeyMismatch):
        p.agent.receive_response(answer)
    with pytest.raises(WrongCode) as caught:
        p.tech.finish(Notice("wrong-code", 2).encode())
    told = caught.value.diagnostics()
    assert fingerprint(mitm_host_key) in told and "middle" in told


def test_mitm_running_its_own_pake_on_each_side_gets_one_guess_and_fails() -> None:
    real = make_pair()
    mitm_host_key = host_key()
    # Towards the technician the MITM plays an agent, with a guessed code...
    fake_agent = AgentHandshake(OneTimeCode(Secret(WRONG)), mitm_host_key, {D})
    victim = TechnicianHandshake(
        real.signer,
        mitm_host_key,
        name="Alice Tech",
        email="alice@example.com",
        ticket="T-1",
        scopes=["diagnostics"],
        code=parse_code(DIGITS),
    )
    answer = victim.respond(fake_agent.challenge())
    with pytest.raises(WrongCode):
        fake_agent.receive_response(answer)  # its one guess per technician attempt: wrong
    with pytest.raises(ConfirmationFailed):
        victim.finish(Confirm(frozenset({D}), bytes(32)).encode())
    # ...and towards the agent it plays a technician, with a guessed code.
    impostor = TechnicianHandshake(
        new_signer(),
        real.host_key,
        name="Alice Tech",
        email="alice@example.com",
        ticket="T-1",
        scopes=["diagnostics"],
        code=parse_code(WRONG),
    )
    with pytest.raises(WrongCode):
        real.agent.receive_response(impostor.respond(real.agent.challenge()))
    assert real.otc.tries_left == 2


def test_swapped_technician_key_fails() -> None:
    p = make_pair()
    challenge = p.agent.challenge()
    answer = p.tech.respond(challenge)
    mallory = new_signer()
    original = decode_response(answer)
    # Swap in Mallory's key with a valid signature of Mallory's over the
    # transcript the agent will build; only the MAC (which needs the code) is missing.
    transcript = Transcript(
        technician_pake=original.pake,
        agent_pake=base64.b64decode(json.loads(challenge)["pake"]),
        host_key=p.host_key,
        technician_key=mallory.public_blob,
        name=original.name,
        email=original.email,
        ticket=original.ticket,
        requested=original.scopes,
    )
    swapped = edit(
        answer,
        key=base64.b64encode(mallory.public_blob).decode(),
        sig=base64.b64encode(sign_transcript(mallory, transcript)).decode(),
    )
    with pytest.raises(KeyMismatch):  # the code was right: the key was changed on the way
        p.agent.receive_response(swapped)
    assert p.otc.tries_left == 2
    assert state(p.otc) is CodeState.ACTIVE


def test_swapped_key_alone_fails() -> None:
    p = make_pair()
    answer = p.tech.respond(p.agent.challenge())
    other = base64.b64encode(new_signer().public_blob).decode()
    with pytest.raises(KeyMismatch):
        p.agent.receive_response(edit(answer, key=other))


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Bob Trusted"},
        {"email": "security@example.com"},
        {"ticket": "T-999"},
        {"scopes": ["diagnostics", "shell"]},
    ],
)
def test_rewriting_what_the_customer_sees_fails(fields: dict[str, object]) -> None:
    p = make_pair()
    answer = p.tech.respond(p.agent.challenge())
    with pytest.raises(KeyMismatch):
        p.agent.receive_response(edit(answer, **fields))
    assert p.otc.tries_left == 2


def test_rewriting_the_grant_fails_at_the_technician() -> None:
    p = make_pair(requested=("diagnostics", "fixes"))
    request = p.agent.receive_response(p.tech.respond(p.agent.challenge()))
    round2 = p.agent.approved(request.grant({D}))
    with pytest.raises(ConfirmationFailed):
        p.tech.finish(edit(round2, granted=["diagnostics", "fixes"]))


def test_replayed_response_in_a_new_handshake_fails() -> None:
    # The MITM keeps Alice's answer from the agent, then replays it in a
    # handshake of its own: the agent's PAKE message is new, so the MAC fails.
    p = make_pair()
    recorded = p.tech.respond(p.agent.challenge())
    replay = new_agent(p)
    replay.challenge()
    with pytest.raises(WrongCode):
        replay.receive_response(recorded)
    assert p.otc.tries_left == 2


def test_replayed_response_after_it_was_used_fails() -> None:
    p = make_pair()
    recorded = p.tech.respond(p.agent.challenge())
    p.agent.receive_response(recorded)
    replay = new_agent(p)
    with pytest.raises(CodeUsed):
        replay.challenge()
    with pytest.raises(CodeUsed):
        replay.receive_response(recorded)


def test_replayed_confirmation_from_another_session_fails() -> None:
    old = make_pair()
    request = old.agent.receive_response(old.tech.respond(old.agent.challenge()))
    old_round2 = old.agent.approved(request.grant())
    p = make_pair()
    p.tech.respond(p.agent.challenge())
    with pytest.raises(ConfirmationFailed):
        p.tech.finish(old_round2)
