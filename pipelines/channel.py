"""Bounded channels between nodes: many producers, one consumer, ended by closing, batch-friendly."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["Channel", "Counts", "Waker"]


class Counts(Protocol):
    """What a channel's `sender` counts the items it takes in."""

    items_out: int


class Waker:
    """One consumer's wake-up: channels and finished items call it; the consumer awaits `wait()`."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        #: the future the consumer waits on (None: it is not waiting, a call does nothing)
        self.waiting: asyncio.Future[None] | None = None

    def __call__(self) -> None:
        fut = self.waiting
        if fut is not None:
            self.waiting = None  # woken: later calls are no-ops until the consumer waits again
            if not fut.done():
                fut.set_result(None)

    def arm(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future[None]:
        """The future the next wake-up resolves, and lets go of; `loop`: the running loop, when
        the caller has it at hand."""
        fut: asyncio.Future[None] = (loop or asyncio.get_running_loop()).create_future()
        self.waiting = fut
        return fut

    async def wait(self) -> None:
        fut = self.arm()
        try:
            await fut
        finally:
            self.waiting = None


class Channel:
    """A bounded FIFO edge. The one way in is `offer` (as many items as fit now; a producer
    with items left waits for room with `add_putter`); a producer that puts items one at a time
    (a source's `put`) gets the same rule as one function from `sender`. Producers `close` when
    done. The one way out is `take` (whatever is there, in one call); a consumer that takes one
    item at a time (an item task taking its next item) gets the same rule as one function from
    `taker`. The consumer is woken through the `wake` it gave. The full-edge rule lives here
    only.

    Moving lists of ready items per operation, rather than one item per await, is what makes
    a pipeline of cheap coroutines fast.
    """

    __slots__ = ("buf", "maxsize", "_open", "closed", "abandoned", "dropped", "wake", "_putters")

    def __init__(self, maxsize: int, producers: int = 1, wake: Waker | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"a channel holds at least one item, not {maxsize}")
        self.buf: deque[Any] = deque()
        self.maxsize = maxsize
        self._open = producers
        self.closed = producers <= 0
        self.abandoned = False
        self.dropped = 0
        #: the consumer's wake-up, called when items arrive or the channel ends
        self.wake = wake if wake is not None else Waker()
        self._putters: deque[asyncio.Future[None]] = deque()

    # -- producer side ---------------------------------------------------------------------
    def offer(self, items: list[Any], start: int = 0) -> int:
        """Append as many of `items[start:]` as fit now; return the index of the first one left.

        Once the consumer has abandoned the channel every item counts as taken (and dropped).
        """
        n = len(items)
        if self.abandoned:
            self.dropped += n - start
            return n
        room = self.maxsize - len(self.buf)
        if room <= 0 or start >= n:
            return start
        if start == 0 and room >= n:
            self.buf.extend(items)
            end = n
        else:
            end = min(n, start + room)
            self.buf.extend(items[start:end])
        if self.wake.waiting is not None:
            self.wake()
        return end

    def sender(self, counts: Counts, done: Awaitable[None],
               when_full: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        """The way in for one producer that puts items one at a time: a function of an item
        that appends it when the channel has room now, adds one to `counts.items_out` and
        returns `done` (an awaitable already done); else (full, or the consumer gone) it
        returns `when_full(item)`, which waits and puts it. One Python call per item: a
        source's `put` is this function."""
        buf, maxsize, append = self.buf, self.maxsize, self.buf.append

        def send(item: Any) -> Awaitable[None]:
            if len(buf) < maxsize and not self.abandoned:
                append(item)
                if self.wake.waiting is not None:
                    self.wake()
                counts.items_out += 1
                return done
            return when_full(item)

        return send

    def taker(self) -> Callable[[], tuple[Any] | None]:
        """The way out for a consumer that takes one item at a time (an item task taking its
        next item): a function returning the next item as a 1-tuple, or None when there is
        none now; producers waiting for room are woken as by `take`. One Python call per item."""
        buf, popleft, putters = self.buf, self.buf.popleft, self._putters

        def take_one() -> tuple[Any] | None:
            if not buf:
                return None
            item = (popleft(),)
            if putters:
                self._wake_putters()
            return item

        return take_one

    def add_putter(self, fut: asyncio.Future[None]) -> None:
        """Resolve `fut` when the consumer next takes items (or abandons the channel)."""
        self._putters.append(fut)

    def remove_putter(self, fut: asyncio.Future[None]) -> None:
        try:
            self._putters.remove(fut)
        except ValueError:
            pass

    @property
    def full(self) -> bool:
        return len(self.buf) >= self.maxsize and not self.abandoned

    def close(self) -> None:
        """One producer is done; when all are, the consumer sees the end once the buffer drains."""
        self._open -= 1
        if self._open <= 0:
            self.closed = True
            self.wake()

    def force_close(self) -> None:
        """End the channel now, whatever its producers are doing (pipeline stopped)."""
        self._open = 0
        self.closed = True
        self.wake()
        self._wake_putters()

    # -- consumer side ---------------------------------------------------------------------
    def attach(self, wake: Waker) -> None:
        """A consumer that arrives after the channel was made (the results reader) gives its
        wake-up here."""
        self.wake = wake

    def take(self, n: int, as_tuples: bool = False) -> list[Any]:
        """Remove and return up to `n` items (never waits); `as_tuples`: each as a 1-tuple
        (built in C as they leave, which a node's inlet wants)."""
        buf = self.buf
        if n >= len(buf):
            items = list(zip(buf)) if as_tuples else list(buf)
            buf.clear()
        else:
            popleft = buf.popleft
            items = [(popleft(),) for _ in range(n)] if as_tuples else [
                popleft() for _ in range(n)]
        if self._putters and items:
            self._wake_putters()
        return items

    def unget(self, items: list[Any]) -> None:
        """Put back, at the front and in order, items the consumer has just taken but could
        not start (nothing ran in between, so they fit where they were)."""
        self.buf.extendleft(reversed(items))

    @property
    def exhausted(self) -> bool:
        """Closed and drained: nothing more will ever arrive."""
        return self.closed and not self.buf

    def abandon(self) -> int:
        """The consumer is gone: drop what is buffered and all later puts; return the count dropped."""
        n = len(self.buf)
        self.dropped += n
        self.buf.clear()
        self.abandoned = True
        self._wake_putters()
        return n

    def _wake_putters(self) -> None:
        for fut in self._putters:
            if not fut.done():
                fut.set_result(None)

    def __len__(self) -> int:
        return len(self.buf)

