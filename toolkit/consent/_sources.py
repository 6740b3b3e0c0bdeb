"""Failed consent tries per source address: a delay that grows, and counts to show.

Every try that costs the code one (a wrong code, a malformed answer, a key
mismatch) is counted against the address it came from. The next answer from
that address waits before it is checked: 0.5 s after one failure, then 1,
2, 4, 8, 16, capped at 30 s. Several answers waiting at once from one address
are checked one per delay, not together, and none waits more than 30 s.
Other addresses are not slowed: a guesser cannot lock the real technician
out, only slow down its own address.

A source is what toolkit.addresses.source_of makes of an address (an IPv4
address, or an IPv6 /64). The table keeps at most :data:`MAX_SOURCES` of
them, forgetting the one whose last failure is oldest; a source with no failure for
:data:`FORGET_AFTER` seconds starts again without delay. No I/O here: the
agent asks how long to wait and sleeps itself.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from toolkit.consent._code import Clock

#: The most addresses remembered at once (about 100 bytes each).
MAX_SOURCES = 1024
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
#: A source with no failure for this long starts again without delay.
FORGET_AFTER = 600.0


@dataclass
class _Source:
    failures: int = 0  # since it was last forgiven: sets the delay
    failed: int = 0  # in all: what the customer is shown
    last: float = 0.0
    next_check: float = 0.0


class Sources:
    """Failed tries per source; :meth:`wait` before checking an answer, :meth:`failed` after."""

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        limit: int = MAX_SOURCES,
        first: float = FIRST_DELAY,
        cap: float = MAX_DELAY,
        forget: float = FORGET_AFTER,
    ) -> None:
        if limit < 1 or first < 0 or cap < first or forget <= 0:
            raise ValueError("bad limits for the source table")
        self._clock = clock
        self._limit = limit
        self._first = first
        self._cap = cap
        self._forget = forget
        self._table: OrderedDict[str, _Source] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def delay(self, failures: int) -> float:
        """How far apart answers from a source with ``failures`` failures are checked."""
        if failures <= 0:
            return 0.0
        return float(min(self._cap, self._first * 2 ** min(failures - 1, 32)))

    def wait(self, source: str) -> float:
        """Seconds the answer from ``source`` waits before it is checked; books its turn."""
        entry = self._current(source)
        if entry is None or entry.failures == 0:
            return 0.0
        now = self._clock()
        # Never more than the cap: answers piled up from one source (or from every
        # technician behind one OpenSSH relay) must not push the real one past its
        # login timeout.
        turn = min(max(now, entry.next_check), now + self._cap)
        entry.next_check = turn + self.delay(entry.failures)
        return turn - now

    def failed(self, source: str) -> None:
        """A try from ``source`` cost the code one."""
        entry = self._current(source)
        if entry is None:
            entry = self._table[source] = _Source()
            while len(self._table) > self._limit:
                self._table.popitem(last=False)  # the oldest failure
        now = self._clock()
        entry.failures += 1
        entry.failed += 1
        entry.last = now
        entry.next_check = max(entry.next_check, now + self.delay(entry.failures))
        self._table.move_to_end(source)

    def failed_tries(self) -> dict[str, int]:
        """Failed tries per source, most recent last."""
        return {source: entry.failed for source, entry in self._table.items()}

    def _current(self, source: str) -> _Source | None:
        entry = self._table.get(source)
        if entry is not None and self._clock() - entry.last >= self._forget:
            entry.failures = 0  # forgiven; what it did stays counted
            entry.next_check = 0.0
        return entry


def tally(counts: dict[str, int], limit: int = 5) -> str:
    """``2 from 10.0.0.5, 1 from 10.0.0.9`` (the largest first, at most ``limit``)."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown = [f"{n} from {source}" for source, n in ranked[:limit]]
    if len(ranked) > limit:
        shown.append(f"{sum(n for _, n in ranked[limit:])} from {len(ranked) - limit} more")
    return ", ".join(shown)


__all__ = [
    "FIRST_DELAY",
    "FORGET_AFTER",
    "MAX_DELAY",
    "MAX_SOURCES",
    "Sources",
    "tally",
]
