"""Stable names in the relay's table and on the wire (toolkit serve --relay --name)."""

from __future__ import annotations

import pytest

from tests.helpers import FakeClock
from toolkit.relay._table import Refused, State, Table
from toolkit.relay._wire import (
    NAMED_PORT,
    is_stable_name,
    parse_register_host,
    parse_register_name,
    register_name_host,
)


def table(clock: FakeClock, **kwargs: object) -> Table:
    return Table(clock=clock, cooldown=60, max_ttl=600, **kwargs)  # type: ignore[arg-type]


def test_the_wire_form_round_trips_and_is_never_taken_for_a_rendezvous() -> None:
    host = register_name_host("web-01")
    assert host == "toolkit-agent;name=web-01"
    assert parse_register_name(host) == "web-01"
    assert parse_register_host(host) is None
    bad_hosts = (
        "toolkit-agent;name=123",
        "toolkit-agent;name=",
        "toolkit-agent;name=a b",
        "toolkit-agent;name=web-01\n",  # $ would let a trailing newline through
        "toolkit-rendezvous;ttl=60",
        "toolkit-agent;name=web-*",
        "other;name=web-01",
    )
    for bad in bad_hosts:
        assert parse_register_name(bad) is None, bad
    assert is_stable_name("db.eu_2") and not is_stable_name("417") and not is_stable_name("x" * 65)
    assert not is_stable_name("web-01\n")


def test_a_name_is_held_by_its_owner_while_connected_and_never_expires() -> None:
    clock = FakeClock()
    t = table(clock)
    held, taken_over = t.claim("web-01", "key-a", "conn-1")
    assert not taken_over and held.stable and held.port == NAMED_PORT
    clock.now += 10**6  # no deadline
    assert t.lookup("web-01") is held and held.state(clock.now) is State.ACTIVE
    assert t.sweep() == []


def test_another_owner_is_refused_and_the_same_owner_takes_it_over() -> None:
    t = table(FakeClock())
    t.claim("web-01", "key-a", "conn-1")
    with pytest.raises(Refused, match="another key holds the name"):
        t.claim("web-01", "key-b", "conn-2")
    again, taken_over = t.claim("web-01", "key-a", "conn-3")  # the agent reconnected
    assert taken_over and again.holder == "conn-3"
    assert t.release("conn-1") == []  # the old connection no longer holds it
    assert t.lookup("web-01").holder == "conn-3"


def test_a_dropped_or_cancelled_name_is_gone_at_once() -> None:
    t = table(FakeClock())
    t.claim("web-01", "key-a", "conn-1")
    t.claim("web-02", "key-a", "conn-1")
    assert [r.name for r in t.release("conn-1")] == ["web-01", "web-02"]
    with pytest.raises(Refused, match="no such rendezvous"):
        t.lookup("web-01")
    t.claim("web-01", "key-b", "conn-2")  # free again: whose it is, --agents says
    assert t.cancel("conn-2", "web-01") is not None
    assert t.get("web-01") is None and len(t) == 0


def test_names_do_not_count_against_the_rendezvous_limits_but_a_connection_has_its_most() -> None:
    t = table(FakeClock(), per_holder=2, per_owner=1, per_source=1)
    t.claim("web-01", "key-a", "conn-1", source="10.0.0.1")
    numbered, _ = t.register("key-a", "conn-1", 60, source="10.0.0.1")
    assert numbered.name.isdigit()
    with pytest.raises(Refused, match="at most 2 rendezvous per connection"):
        t.claim("web-02", "key-a", "conn-1")
    with pytest.raises(Refused, match="not an agent name"):
        t.claim("123", "key-a", "conn-9")
