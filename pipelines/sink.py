"""The result sink: where the output nodes' values go, an ordinary outlet of theirs.

It is a bounded channel read by `Plumber.result_batches()` when the caller collects results,
or only a count when it does not.
"""

from __future__ import annotations

from typing import Any

from .channel import Channel

__all__ = ["ResultSink"]


class ResultSink:
    """Where output nodes' values go: a bounded channel read by `result_batches()`, or nowhere
    (only counted) when the caller does not collect results."""

    def __init__(self, collect: bool, producers: int, maxsize: int) -> None:
        self.channel = Channel(maxsize, producers) if collect else None
        self.count = 0

    def accept(self, node: str, values: list[Any]) -> list[tuple[str, Any]] | None:
        """Count `values` from output node `node`; return them as the (node, value) pairs its
        channel takes, or None when results are only counted. (The node offers the pairs to
        `channel` as to any outlet, and waits for room the same way.)"""
        self.count += len(values)
        if self.channel is None:
            return None
        return [(node, v) for v in values]

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
