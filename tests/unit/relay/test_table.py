"""The relay's rendezvous table, rate limit and wire format, on a fake clock."""

from __future__ import annotations

import pytest

from tests.helpers import FakeClock
from toolkit.errors import UsageError
from toolkit.relay._limits import RateLimit
from toolkit.relay._table import MAX_NAME, Refused, State, Table
from toolkit.relay._wire import (
    is_toolkit_relay,
    name_of_path,
    parse_register_host,
    register_host,
)
from toolkit.transport.relay import RelayAddress, RelayRoute


def table(clock: FakeClock, **kwargs: object) -> Table:
    return Table(clock=clock, cooldown=60, max_ttl=600, **kwargs)  # type: ignore[arg-type]


def test_names_are_three_digits_random_and_never_handed_out_twice() -> None:
    t = table(FakeClock(), per_holder=1000)
    names = [t.register("k", "conn", 60)[0].name for _ in range(900)]
    assert len(set(names)) == 900
    assert all(len(n) == 3 and n[0] != "0" for n in names)
    assert names[:20] != sorted(names[:20])  # drawn at random, not in order


def test_names_widen_to_four_then_five_digits_when_they_run_out() -> None:
    t = table(FakeClock(), per_holder=100_000)
    for _ in range(900):
        t.register("k", "conn", 60)
    assert len(t.register("k", "conn", 60)[0].name) == 4
    for _ in range(8999):
        t.register("k", "conn", 60)
    wide = t.register("k", "conn", 60)[0].name
    assert len(wide) == 5 and int(wide) <= MAX_NAME


def test_a_full_table_refuses() -> None:
    t = Table(clock=FakeClock(), per_holder=100_000, draw=lambda n: n - 1)
    for _ in range(MAX_NAME - 99):
        t.register("k", "conn", 60)
    with pytest.raises(Refused, match="no rendezvous name is free"):
        t.register("k", "conn", 60)


def test_a_name_is_renewed_by_its_owner_and_refused_to_anyone_else() -> None:
    clock = FakeClock()
    t = table(clock)
    first, renewed = t.register("alice", "c1", 60)
    assert not renewed
    clock.now += 30
    again, renewed = t.register("alice", "c1", 60, first.name)
    assert renewed and again is first and first.deadline == clock.now + 60
    with pytest.raises(Refused, match="in use"):
        t.register("mallory", "c2", 60, first.name)
    for bad in ("042", "12", "123456", "abc", "99999"):
        with pytest.raises(Refused, match="not a rendezvous name"):
            t.register("alice", "c1", 60, bad)


def test_a_dropped_agent_keeps_its_name_until_the_deadline_and_may_reclaim_it() -> None:
    clock = FakeClock()
    t = table(clock)
    held, _ = t.register("alice", "c1", 60)
    assert t.release("c1") == [held]
    assert held.state(clock.now) is State.WAITING
    with pytest.raises(Refused, match="reconnecting"):
        t.lookup(held.name)
    with pytest.raises(Refused, match="in use"):
        t.register("mallory", "c2", 60, held.name)
    back, renewed = t.register("alice", "c3", 60, held.name)
    assert renewed and back.holder == "c3" and t.lookup(held.name) is back


def test_expired_names_cool_down_before_anyone_else_may_have_them() -> None:
    clock = FakeClock()
    t = table(clock)
    held, _ = t.register("alice", "c1", 10)
    clock.now += 10
    with pytest.raises(Refused, match="expired"):
        t.lookup(held.name)
    assert t.sweep() == []  # still cooling down: an old code must not reach a new agent
    with pytest.raises(Refused, match="in use"):
        t.register("bob", "c2", 10, held.name)
    clock.now += 60
    assert t.sweep() == [held]
    with pytest.raises(Refused, match="no such rendezvous"):
        t.lookup(held.name)
    assert t.register("bob", "c2", 10, held.name)[0].owner == "bob"


def test_ttls_are_capped_and_connections_hold_a_few_names_at_most() -> None:
    clock = FakeClock()
    t = table(clock, per_holder=2)
    assert t.register("a", "c", 10_000)[0].deadline == clock.now + 600
    t.register("a", "c", 1)
    with pytest.raises(Refused, match="at most 2"):
        t.register("a", "c", 1)


def test_cancel_puts_a_name_into_its_cool_down_at_once() -> None:
    clock = FakeClock()
    t = table(clock)
    held, _ = t.register("alice", "c1", 60)
    assert t.cancel("c2", held.name) is None  # only its holder may
    assert t.cancel("c1", held.name) is held
    with pytest.raises(Refused, match="expired"):
        t.lookup(held.name)
    assert t.counts() == {"active": 0, "waiting": 0, "expired": 1}


def test_rate_limit_is_a_token_bucket_per_address() -> None:
    clock = FakeClock()
    limit = RateLimit(1.0, 3, clock=clock)
    assert [limit.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b")
    clock.now += 1.0
    assert limit.allow("a") and not limit.allow("a")
    clock.now += 100
    assert [limit.allow("a") for _ in range(4)] == [True, True, True, False]
    with pytest.raises(ValueError):
        RateLimit(0, 1)


def test_registration_hosts_and_banners() -> None:
    assert parse_register_host(register_host(600)) == 600.0
    assert parse_register_host(register_host(0.2)) == 1.0
    for other in ("localhost", "toolkit-rendezvous", "toolkit-rendezvous;ttl=x", ""):
        assert parse_register_host(other) is None
    assert is_toolkit_relay("SSH-2.0-toolkit-relay_1")
    assert not is_toolkit_relay("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10")
    assert not is_toolkit_relay(None)
    assert name_of_path("/run/toolkit-relay/417") == "417" == name_of_path("417")


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("relay.example.com", None, "relay.example.com", None),
        ("support@relay.example.com:2222", "support", "relay.example.com", 2222),
        ("127.0.0.1:22", None, "127.0.0.1", 22),
        ("[::1]:2222", None, "::1", 2222),
        ("me@[2001:db8::1]", "me", "2001:db8::1", None),
        ("bastion", None, "bastion", None),
    ],
)
def test_relay_addresses(text: str, user: str | None, host: str, port: int | None) -> None:
    address = RelayAddress.parse(text)
    assert (address.user, address.host, address.port) == (user, host, port)
    assert RelayAddress.parse(str(address)) == address


@pytest.mark.parametrize("text", ["", "@host", "host:port", "host:0", "host:70000", "a b", "::1"])
def test_bad_relay_addresses_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        RelayAddress.parse(text)


def test_the_socket_directory_must_be_absolute() -> None:
    with pytest.raises(UsageError):
        RelayRoute(RelayAddress("relay"), socket_dir="relative/dir")
