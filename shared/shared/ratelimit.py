"""Token buckets per principal: `rate` units per second refill a bucket of `burst` units.

A request costs as many units as it carries records (a batch of 500 posts costs 500). It is admitted when its
bucket holds its cost; a request larger than the whole bucket is admitted only when the bucket is full and
leaves it in debt, so any allowed batch size can get through and the long-run rate still holds. A refused
request takes nothing from the bucket and is told how long to wait before the same request would be admitted.

The buckets live in the process: with N replicas behind a load balancer a principal gets up to N times the rate.
"""

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Float round-off on the clock (1000.01 - 1000 < 0.01) must not refuse a request that is exactly due.
_EPSILON = 1e-6


@dataclass(slots=True)
class _Bucket:
    level: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        elif now > bucket.updated:
            bucket.level = min(self.burst, bucket.level + (now - bucket.updated) * self.rate)
            bucket.updated = now
        return bucket

    def acquire(self, key: str, cost: float = 1.0) -> float:
        """Takes `cost` units from `key`'s bucket: 0.0 when admitted, else the seconds to wait before retrying."""
        if cost <= 0:
            return 0.0
        with self._lock:
            bucket = self._refilled(key, self._clock())
            needed = min(cost, self.burst)
            if bucket.level >= needed - _EPSILON:
                bucket.level -= cost
                return 0.0
            return (needed - bucket.level) / self.rate

    def level(self, key: str) -> float:
        """Units currently in `key`'s bucket (negative while in debt)."""
        with self._lock:
            return self._refilled(key, self._clock()).level


def retry_after(wait: float) -> str:
    """The `Retry-After` header for a wait in seconds: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait - 1e-9)))
