"""Per-node counters, cheap enough to update on the hot path and readable while running."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["NodeMetrics"]


class NodeMetrics:
    """Items in/out, errors, latency and a recent rate of one node; plain attributes, no locks."""

    __slots__ = (
        "items_in", "items_out", "errors", "retries", "dropped",
        "lat_sum", "lat_n", "status", "started", "ended", "_rate", "_rate_t", "_rate_out",
    )

    def __init__(self) -> None:
        self.items_in = 0
        self.items_out = 0
        self.errors = 0
        self.retries = 0
        self.dropped = 0
        self.lat_sum = 0.0
        self.lat_n = 0
        self.status = "pending"
        self.started: float | None = None
        self.ended: float | None = None
        self._rate = 0.0
        self._rate_t = time.monotonic()
        self._rate_out = 0

    def rate(self) -> float:
        """Items out per second, over the time since the previous reading (at least 0.1 s)."""
        now = time.monotonic()
        dt = now - self._rate_t
        if dt >= 0.1:
            self._rate = (self.items_out - self._rate_out) / dt
            self._rate_t, self._rate_out = now, self.items_out
        if self.status != "running":
            return 0.0
        return self._rate

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "in": self.items_in,
            "out": self.items_out,
            "errors": self.errors,
            "retries": self.retries,
            "dropped": self.dropped,
            "rate": round(self.rate(), 1),
            "latency_ms": round(1000 * self.lat_sum / self.lat_n, 3) if self.lat_n else 0.0,
        }
