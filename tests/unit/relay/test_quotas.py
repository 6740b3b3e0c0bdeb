"""How many rendezvous names one source address and one key may hold, on a fake clock."""

from __future__ import annotations

import pytest

from tests.helpers import FakeClock
from toolkit.addresses import source_of
from toolkit.relay._limits import MAX_ADDRESSES, RateLimit
from toolkit.relay._table import Refused, Table


def quota_table(clock: FakeClock, **kwargs: object) -> Table:
    return Table(clock=clock, cooldown=60, max_ttl=600, per_holder=100, **kwargs)  # type: ignore[arg-type]


def test_one_source_holds_its_share_of_names_whatever_the_keys() -> None:
    clock = FakeClock()
    t = quota_table(clock, per_source=3)
    held = [t.register(f"key{i}", f"conn{i}", 60, source="192.0.2.7")[0] for i in range(3)]
    with pytest.raises(Refused, match="too many rendezvous from your address"):
        t.register("key9", "conn9", 60, source="192.0.2.7")
    assert t.register("key9", "conn9", 60, source="192.0.2.8")  # the office next door
    # At its limit, an agent still renews and reclaims its own name (a new code, a reconnect).
    again, renewed = t.register("key0", "conn7", 60, held[0].name, source="192.0.2.7")
    assert renewed and again is held[0]


def test_one_key_holds_its_share_of_names_whatever_the_addresses() -> None:
    t = quota_table(FakeClock(), per_owner=2)
    t.register("key", "c1", 60, source="192.0.2.1")
    t.register("key", "c2", 60, source="192.0.2.2")
    with pytest.raises(Refused, match="too many rendezvous for your key"):
        t.register("key", "c3", 60, source="192.0.2.3")
    assert t.register("other", "c3", 60, source="192.0.2.3")


def test_a_name_counts_until_it_is_forgotten_then_the_room_is_back() -> None:
    # A cancelled or expired name stays out of circulation for its cool-down, so it
    # still counts: registering and cancelling in a loop takes no more of the space.
    clock = FakeClock()
    t = quota_table(clock, per_source=1, per_owner=1)
    first, _ = t.register("key", "c1", 60, source="a")
    t.cancel("c1", first.name)
    with pytest.raises(Refused, match="from your address"):
        t.register("key", "c1", 60, source="a")
    clock.now += 60
    assert t.sweep() == [first]
    assert t.register("key", "c1", 60, source="a")


def test_the_counts_per_address_and_key_are_forgotten_with_their_names() -> None:
    clock = FakeClock()
    t = quota_table(clock, per_source=2, per_owner=2)
    for i in range(5000):
        t.register(f"key{i}", f"conn{i}", 10, source=f"10.0.{i // 256}.{i % 256}")
    assert len(t._held_by_source) == len(t._held_by_owner) == 5000
    clock.now += 70
    assert len(t.sweep()) == 5000
    assert t._held_by_source == {} and t._held_by_owner == {}  # nothing left behind


def test_without_quotas_one_source_may_fill_the_table() -> None:
    t = quota_table(FakeClock())
    for i in range(100):
        t.register("key", f"c{i}", 60, source="a")
    assert len(t) == 100


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4 on a dual-stack socket
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),  # the same network: one source
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
    ],
)
def test_an_ipv6_network_is_one_source(address: str, source: str) -> None:
    # One host gets a whole /64 (2**64 addresses): counting each address would count nothing.
    assert source_of(address) == source


def test_the_buckets_per_source_are_bounded() -> None:
    clock = FakeClock()
    limit = RateLimit(1.0, 2, clock=clock)
    for i in range(MAX_ADDRESSES + 10):
        limit.allow(f"k{i}")
    assert len(limit) <= MAX_ADDRESSES


def test_the_command_line_defaults_are_the_relays_defaults() -> None:
    # cli/relay.py spells them out (--help stays fast without importing the relay).
    import inspect

    from toolkit.cli.relay import relay_command
    from toolkit.relay.server import RelayOptions

    defaults = RelayOptions()
    parameters = inspect.signature(relay_command).parameters
    for name in (
        "max_ttl", "lookup_rate", "lookup_burst", "names_per_address", "names_per_key",
        "register_rate", "register_burst",
    ):  # fmt: skip
        assert parameters[name].default == getattr(defaults, name), name
