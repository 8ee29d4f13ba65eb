"""The result sink: where the output nodes' values go, an ordinary outlet of theirs.

It is a bounded channel read by `Plumber.result_batches()` when the caller collects results,
or only a count when it does not.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from .channel import Channel

__all__ = ["ResultSink"]


class ResultSink:
    """Where output nodes' values go: a bounded channel read by `result_batches()`, or nowhere
    (only counted) when the caller does not collect results."""

    def __init__(self, collect: bool, producers: int, maxsize: int) -> None:
        self.channel = Channel(maxsize, producers) if collect else None
        self.count = 0

    async def deliver(self, node: str, values: list[Any]) -> None:
        rest = self.offer(node, values)
        if rest is not None:
            await rest

    def offer(self, node: str, values: list[Any]) -> Awaitable[None] | None:
        """Deliver what fits now: None when all of `values` went, else the rest to await (it
        waits for room)."""
        self.count += len(values)
        ch = self.channel
        if ch is None:
            return None
        pairs = [(node, v) for v in values]
        i = ch.offer(pairs)
        return ch.put_many(pairs[i:]) if i < len(pairs) else None

    def deliver_nowait(self, node: str, values: list[Any]) -> None:
        """Deliver `values` now: the caller checked that the sink is not `full()`; what does
        not fit is dropped (and counted) as on an abandoned channel."""
        self.count += len(values)
        if self.channel is not None:
            ch = self.channel
            ch.dropped += len(values) - ch.offer([(node, v) for v in values])

    def full(self) -> bool:
        return self.channel is not None and self.channel.full

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
