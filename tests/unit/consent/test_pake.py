"""The PAKE machines: both arrival orders, malformed peer messages, late inputs."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.consent.fakes import DIGITS, WRONG, Event, RecordingPakeListener, state
from toolkit.consent._pake import (
    MESSAGE_LENGTH,
    Pake,
    PakeKey,
    PakeState,
    Side,
    SortedPake,
    SortedState,
)
from toolkit.consent.errors import HandshakeOutOfOrder
from toolkit.secrets import Secret

PACKAGE = Path(__file__).parents[3] / "toolkit"
# An Ed25519 point of order 8 and the encoding of the identity element: both
# are valid curve points that SPAKE2 must refuse (small-subgroup attacks).
SMALL_ORDER = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
IDENTITY = bytes.fromhex("01" + "00" * 31)


def machine(side: Side, events: list[Event], who: str) -> tuple[Pake, RecordingPakeListener]:
    listener = RecordingPakeListener(events, who)
    return Pake(side, listener), listener


def agent_message(events: list[Event] | None = None) -> bytes:
    pake, listener = machine(Side.AGENT, events if events is not None else [], "agent")
    pake.got_code(Secret(DIGITS))
    assert listener.message is not None
    return listener.message


def test_code_first_then_peer() -> None:
    events: list[Event] = []
    agent, agent_out = machine(Side.AGENT, events, "agent")
    tech, tech_out = machine(Side.TECHNICIAN, events, "tech")
    agent.got_code(Secret(DIGITS))
    assert events == [("agent.pake_message", MESSAGE_LENGTH)]
    assert state(agent) is PakeState.KNOW_CODE
    tech.got_code(Secret(DIGITS))
    assert agent_out.message is not None and tech_out.message is not None
    tech.got_peer_message(agent_out.message)
    agent.got_peer_message(tech_out.message)
    assert events == [
        ("agent.pake_message", MESSAGE_LENGTH),
        ("tech.pake_message", MESSAGE_LENGTH),
        ("tech.pake_key",),
        ("agent.pake_key",),
    ]
    assert agent_out.key is not None and tech_out.key is not None
    assert agent_out.key.derive(b"x") == tech_out.key.derive(b"x")
    assert state(agent) is state(tech) is PakeState.KNOW_BOTH
    assert agent.inner_state is tech.inner_state is SortedState.KEYED


def test_reversed_peer_first_then_code() -> None:
    events: list[Event] = []
    msg = agent_message()
    tech, _ = machine(Side.TECHNICIAN, events, "tech")
    tech.got_peer_message(msg)
    assert events == []  # nothing can happen before the code is known
    assert state(tech) is PakeState.KNOW_PEER
    tech.got_code(Secret(DIGITS))
    assert events == [("tech.pake_message", MESSAGE_LENGTH), ("tech.pake_key",)]
    assert state(tech) is PakeState.KNOW_BOTH


def test_both_orders_agree_on_the_key() -> None:
    a_events: list[Event] = []
    agent, agent_out = machine(Side.AGENT, a_events, "agent")
    agent.got_code(Secret(DIGITS))
    tech, tech_out = machine(Side.TECHNICIAN, [], "tech")
    assert agent_out.message is not None
    tech.got_peer_message(agent_out.message)
    tech.got_code(Secret(DIGITS))
    assert tech_out.message is not None
    agent.got_peer_message(tech_out.message)
    assert agent_out.key is not None and tech_out.key is not None
    assert agent_out.key.derive(b"p") == tech_out.key.derive(b"p")


def test_wrong_code_gives_different_keys_not_an_error() -> None:
    agent, agent_out = machine(Side.AGENT, [], "agent")
    tech, tech_out = machine(Side.TECHNICIAN, [], "tech")
    agent.got_code(Secret(DIGITS))
    tech.got_code(Secret(WRONG))
    assert agent_out.message is not None and tech_out.message is not None
    agent.got_peer_message(tech_out.message)
    tech.got_peer_message(agent_out.message)
    assert agent_out.key is not None and tech_out.key is not None
    assert agent_out.key.derive(b"p") != tech_out.key.derive(b"p")


def test_subkeys_differ_by_purpose_and_need_one() -> None:
    key = PakeKey(bytes(range(32)))
    assert key.derive(b"a") != key.derive(b"b")
    assert len(key.derive(b"a", 16)) == 16
    with pytest.raises(ValueError):
        key.derive(b"")
    assert "redacted" in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(ValueError):
        PakeKey(b"short")


def _bad_messages() -> dict[str, bytes]:
    good = agent_message()
    return {
        "empty": b"",
        "side byte only": b"B",
        "short": good[:-1],
        "long": good + b"\x00",  # spake2 would ignore trailing bytes: we do not
        "same side": b"A" + good[1:],  # the technician's own side
        "unknown side": b"C" + good[1:],
        "not on curve": b"B" + b"\x02" * 32,
        "identity element": b"B" + IDENTITY,
        "small order point": b"B" + SMALL_ORDER,
        "all ones": b"B" + b"\xff" * 32,
    }


@pytest.mark.parametrize("name", sorted(_bad_messages()))
@pytest.mark.parametrize("order", ["code first", "peer first"])
def test_bad_peer_message_is_refused(name: str, order: str) -> None:
    events: list[Event] = []
    tech, out = machine(Side.TECHNICIAN, events, "tech")
    bad = _bad_messages()[name]
    if order == "code first":
        tech.got_code(Secret(DIGITS))
        tech.got_peer_message(bad)
    else:
        tech.got_peer_message(bad)
        tech.got_code(Secret(DIGITS))
    assert events == [("tech.pake_message", MESSAGE_LENGTH), ("tech.pake_refused",)]
    assert tech.inner_state is SortedState.REFUSED
    assert out.key is None


def test_reflected_message_is_refused() -> None:
    events: list[Event] = []
    tech, out = machine(Side.TECHNICIAN, events, "tech")
    tech.got_code(Secret(DIGITS))
    assert out.message is not None
    tech.got_peer_message(out.message)
    assert events[-1] == ("tech.pake_refused",)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=40))
def test_any_bytes_give_a_key_or_a_refusal_never_a_crash(blob: bytes) -> None:
    events: list[Event] = []
    agent, _ = machine(Side.AGENT, events, "agent")
    agent.got_code(Secret(DIGITS))
    agent.got_peer_message(blob)
    assert events[-1] in {("agent.pake_key",), ("agent.pake_refused",)}


def test_duplicates_and_late_inputs_are_non_events() -> None:
    events: list[Event] = []
    tech, out = machine(Side.TECHNICIAN, events, "tech")
    tech.got_code(Secret(DIGITS))
    tech.got_code(Secret(WRONG))  # the first code counts
    first = out.message
    msg = agent_message()
    tech.got_peer_message(msg)
    key = out.key
    tech.got_peer_message(msg)
    tech.got_code(Secret(DIGITS))
    assert events == [("tech.pake_message", MESSAGE_LENGTH), ("tech.pake_key",)]
    assert out.message is first and out.key is key

    events.clear()
    other, _ = machine(Side.TECHNICIAN, events, "other")
    other.got_peer_message(msg)
    other.got_peer_message(b"B" + b"\x02" * 32)  # the first message counts
    other.got_code(Secret(DIGITS))
    assert events == [("other.pake_message", MESSAGE_LENGTH), ("other.pake_key",)]


def test_late_inputs_after_a_refusal_change_nothing() -> None:
    events: list[Event] = []
    tech, _ = machine(Side.TECHNICIAN, events, "tech")
    tech.got_code(Secret(DIGITS))
    tech.got_peer_message(b"junk")
    tech.got_peer_message(agent_message())
    tech.got_code(Secret(DIGITS))
    assert events == [("tech.pake_message", MESSAGE_LENGTH), ("tech.pake_refused",)]
    assert tech.inner_state is SortedState.REFUSED


def test_inner_machine_needs_the_code_first() -> None:
    events: list[Event] = []
    inner = SortedPake(Side.AGENT, RecordingPakeListener(events))
    with pytest.raises(HandshakeOutOfOrder):
        inner.finish(b"B" + b"\x00" * 32)
    assert state(inner) is SortedState.IDLE and events == []
    inner.start(Secret(DIGITS))
    inner.start(Secret(WRONG))
    assert events == [("pake.pake_message", MESSAGE_LENGTH)]


def test_only_pake_module_imports_spake2() -> None:
    importers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "spake2" for n in names):
                importers.append(path.relative_to(PACKAGE).as_posix())
    assert sorted(set(importers)) == ["consent/_pake.py"]
