"""Per-source-address token buckets: how often one address may look rendezvous up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
#: Addresses remembered at most; the fullest buckets (idle longest) are forgotten first.
MAX_ADDRESSES = 65536


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimit:
    """``burst`` lookups at once per address, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, address: str) -> bool:
        """Take one token for ``address``; False when it has none left."""
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


__all__ = ["RateLimit"]
