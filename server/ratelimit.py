"""Token buckets: the per-session and per-address rate limits, and cost budgets."""

from __future__ import annotations

import time
from collections import OrderedDict

__all__ = ["TokenBucket", "BucketTable"]


class TokenBucket:
    """Allow `rate` operations per second on average and bursts of up to `burst`."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def _refill(self) -> float:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._tokens

    def take(self, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are enough; False (and nothing spent) otherwise."""
        if self._refill() >= cost:
            self._tokens -= cost
            return True
        return False

    def ready(self) -> bool:
        """Whether the bucket holds any token (a cost budget not in debt)."""
        return self._refill() > 0

    def delay(self) -> float:
        """Seconds until the bucket holds a token again (0 if it does now)."""
        tokens = self._refill()
        return 0.0 if tokens > 0 else (-tokens + 1e-3 * self.rate) / self.rate

    def charge(self, cost: float) -> None:
        """Spend `cost` after the fact (a measured cost); the bucket may go into debt."""
        self._refill()
        self._tokens = max(self._tokens - cost, -self.burst)


class BucketTable:
    """One TokenBucket per key (a client address); the least recently used keys are forgotten
    past `max_keys`, so a spray of addresses costs bounded memory."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def get(self, key: str) -> TokenBucket:
        """The bucket of `key` (a new, full one if it is not known)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket
