"""Token buckets per source (address or key): how often one may look up or register.

A source address is counted as the network its owner controls: an IPv4
address, or the /64 of an IPv6 address (one host is given a whole /64, so
counting its addresses one by one would count nothing); see
:func:`toolkit.addresses.source_of`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
#: Sources remembered at most; the fullest buckets (idle longest) are forgotten first.
MAX_ADDRESSES = 65536


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimit:
    """``burst`` at once per source (address or key), refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, address: str) -> bool:
        """Take one token for ``address`` (any source); False when it has none left."""
        now = self._clock()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= MAX_ADDRESSES:
                self._forget(now)
            bucket = self._buckets[address] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _forget(self, now: float) -> None:
        """Drop every address whose bucket has refilled; they are as good as new."""
        full = [
            a
            for a, b in self._buckets.items()
            if b.tokens + (now - b.stamp) * self.rate >= self.burst
        ]
        for address in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[address]

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = ["MAX_ADDRESSES", "RateLimit"]
