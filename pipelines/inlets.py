"""A node's input side: merge (each item alone) or zip (one item from each upstream node)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .channel import Channel

__all__ = ["Inlet", "MergeInlet", "ZipInlet"]


class MergeInlet:
    """Every upstream item alone, as a 1-tuple, in arrival order (`aggregate_inputs: false`)."""

    __slots__ = ("channel", "take_one")

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        #: the next item, or None when there is none now (the channel's one-item way out)
        self.take_one: Callable[[], tuple[Any, ...] | None] = channel.taker()

    def take(self, n: int) -> list[tuple[Any, ...]]:
        return self.channel.take(n, as_tuples=True)

    def ready(self) -> bool:
        """An item can be taken now."""
        return bool(self.channel.buf)

    def unget(self, items: list[tuple[Any, ...]]) -> None:
        """Put back items just taken that could not start (see `Channel.unget`)."""
        self.channel.unget([t[0] for t in items])

    @property
    def exhausted(self) -> bool:
        return self.channel.exhausted

    def depth(self) -> int:
        return len(self.channel.buf)

    def finish(self) -> int:
        return 0

    def detach(self) -> int:
        return self.channel.abandon()

    def unpaired(self) -> int:
        return 0


class ZipInlet:
    """One item from each upstream node per call, in upstream order; ends with the shortest."""

    __slots__ = ("channels",)

    def __init__(self, channels: list[Channel]) -> None:
        self.channels = channels

    def take(self, n: int) -> list[tuple[Any, ...]]:
        m = min(n, min(len(c.buf) for c in self.channels))
        if m <= 0:
            return []
        return list(zip(*(c.take(m) for c in self.channels), strict=True))

    def take_one(self) -> tuple[Any, ...] | None:
        """The next pair, or None when there is none now."""
        got = self.take(1)
        return got[0] if got else None

    def ready(self) -> bool:
        """A pair can be taken now."""
        return all(c.buf for c in self.channels)

    def unget(self, items: list[tuple[Any, ...]]) -> None:
        """Put back pairs just taken that could not start (see `Channel.unget`)."""
        for i, c in enumerate(self.channels):
            c.unget([t[i] for t in items])

    @property
    def exhausted(self) -> bool:
        return any(c.exhausted for c in self.channels)

    def depth(self) -> int:
        return sum(len(c.buf) for c in self.channels)

    def finish(self) -> int:
        """No more pairs can form: drop what is left, and all that still comes (unpaired)."""
        return sum(c.abandon() for c in self.channels)

    def detach(self) -> int:
        self.finish()
        return 0  # counted by unpaired()

    def unpaired(self) -> int:
        """Items that found no partner: left over at the end, or arriving after it."""
        return sum(c.dropped for c in self.channels)


Inlet = MergeInlet | ZipInlet
