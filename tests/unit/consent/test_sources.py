"""Failed tries per source address: the delay grows per source, others go on, memory is bounded."""

from __future__ import annotations

import sys

from tests.helpers import FakeClock
from toolkit.addresses import source_of
from toolkit.consent._sources import (
    FIRST_DELAY,
    FORGET_AFTER,
    MAX_DELAY,
    MAX_SOURCES,
    Sources,
    tally,
)

A, B = "192.0.2.1", "198.51.100.7"


def test_no_failure_no_wait() -> None:
    sources = Sources(clock=FakeClock())
    assert [sources.wait(A) for _ in range(5)] == [0.0] * 5


def test_the_delay_doubles_per_failure_up_to_a_cap() -> None:
    clock = FakeClock()
    sources = Sources(clock=clock)
    waits = []
    for _ in range(8):
        sources.failed(A)
        waits.append(sources.wait(A))
        clock.now += waits[-1]  # the answer waited its turn, then failed again
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, MAX_DELAY, MAX_DELAY]


def test_one_guessing_address_does_not_slow_another() -> None:
    sources = Sources(clock=FakeClock())
    for _ in range(10):
        sources.failed(A)
    assert sources.wait(B) == 0.0
    assert sources.wait(A) > 0


def test_answers_waiting_at_once_are_checked_one_per_delay() -> None:
    # Sixteen connections from one address answering together are not checked together.
    sources = Sources(clock=FakeClock())
    sources.failed(A)
    sources.failed(A)  # 1 s apart from now on
    assert [sources.wait(A) for _ in range(4)] == [1.0, 2.0, 3.0, 4.0]


def test_no_answer_waits_longer_than_the_cap() -> None:
    # A pile of answers from one source (or everyone behind one OpenSSH relay) must not
    # push the real technician past the login timeout.
    sources = Sources(clock=FakeClock())
    for _ in range(8):
        sources.failed(A)
    assert max(sources.wait(A) for _ in range(100)) == MAX_DELAY


def test_a_quiet_source_is_forgiven_but_still_counted() -> None:
    clock = FakeClock()
    sources = Sources(clock=clock)
    for _ in range(4):
        sources.failed(A)
    clock.now += FORGET_AFTER
    assert sources.wait(A) == 0.0
    sources.failed(A)
    assert sources.wait(A) == FIRST_DELAY  # starts again from the first delay
    assert sources.failed_tries() == {A: 5}


def test_the_table_is_bounded_and_forgets_the_oldest_failure() -> None:
    clock = FakeClock()
    sources = Sources(clock=clock)
    for n in range(MAX_SOURCES + 500):
        sources.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
        clock.now += 0.001
    assert len(sources) == MAX_SOURCES
    assert "10.0.0.0" not in sources.failed_tries()
    assert sys.getsizeof(sources._table) < 200_000
    sources.failed(A)
    assert len(sources) == MAX_SOURCES and A in sources.failed_tries()


def test_an_ipv6_host_counts_as_its_64() -> None:
    assert source_of("2001:db8:1:2::5") == source_of("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::5") != source_of("2001:db8:1:2::5")
    assert source_of("::ffff:192.0.2.1") == A
    assert source_of("fe80::1%eth0") == "fe80::/64"
    assert source_of(A) == A
    assert source_of(None) == "unknown"


def test_tally_reads_well() -> None:
    assert tally({A: 1, B: 2}) == f"2 from {B}, 1 from {A}"
    many = {f"10.0.0.{n}": 1 for n in range(8)}
    assert tally(many, limit=2) == "1 from 10.0.0.0, 1 from 10.0.0.1, 6 from 6 more"
