"""The credit window between a pipeline's output and one client.

python-socketio never waits when emitting: each client has an unbounded send queue. Results are
therefore emitted with a socket.io ack, and at most `size` results may be sent and not yet
acknowledged; past that the sender waits, which stops the output nodes, which (bounded queues)
stops the whole pipeline. To keep the ack traffic small, an ack is requested on every `stride`-th
result and whenever the sender is about to wait; one ack then releases every result it covers.

The window also counts bytes: results in flight to the client may add up to at most `max_bytes`
(a window of big results cannot hold gigabytes). An ack is also requested every quarter of
that, so a sender waiting for bytes always waits on results an ack was asked for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["ClientStalled", "CreditWindow", "WindowClosed"]


class ClientStalled(Exception):
    """Raised when the client acknowledged nothing for `stall_timeout` while the window was full."""


class WindowClosed(Exception):
    """Raised by a waiting sender when the window was closed (the run is being stopped)."""


class CreditWindow:
    """Count results in flight to one client and make the sender wait when there are too many."""

    def __init__(self, size: int, *, stall_timeout: float, stride: int | None = None,
                 max_bytes: int | None = None) -> None:
        self.size = max(1, size)
        self.stall_timeout = stall_timeout
        self.stride = stride if stride is not None else max(1, self.size // 4)
        self.max_bytes = max_bytes if max_bytes is not None else 2**62
        self._byte_stride = max(1, self.max_bytes // 4)
        self.unacked = 0
        self.unacked_bytes = 0
        self._uncovered = 0
        self._uncovered_bytes = 0
        self._closed = False
        self._changed = asyncio.Event()
        self.last_ack = time.monotonic()

    @property
    def full(self) -> bool:
        return self.unacked >= self.size

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wake any waiting sender with WindowClosed; later acks are ignored."""
        self._closed = True
        self._changed.set()

    async def acquire(self, count: int, nbytes: int = 0) -> None:
        """Wait until `count` more results of `nbytes` fit (a batch larger than the window fits
        an empty one; results an ack was not yet asked for never make the sender wait)."""
        while not self._closed and self.unacked > self._uncovered and (
            self.unacked + count > self.size
            or self.unacked_bytes + nbytes > self.max_bytes
        ):
            await self._wait_for_ack()
        if self._closed:
            raise WindowClosed

    async def drain(self) -> None:
        """Wait until every sent result is acknowledged (raises ClientStalled past the deadline)."""
        while not self._closed and self.unacked > 0:
            await self._wait_for_ack()

    def sent(self, count: int, nbytes: int = 0, *,
             flush: bool = False) -> Callable[..., None] | None:
        """Record `count` results (`nbytes` in all) about to be emitted; the ack callback to
        emit with, if any.

        :param flush: request an ack now (the sender has nothing more to send at the moment).
        """
        self.unacked += count
        self.unacked_bytes += nbytes
        self._uncovered += count
        self._uncovered_bytes += nbytes
        if (flush or self._uncovered >= self.stride or self.unacked >= self.size
                or self._uncovered_bytes >= self._byte_stride):
            covered, covered_bytes = self._uncovered, self._uncovered_bytes
            self._uncovered = self._uncovered_bytes = 0
            if self.unacked == count:
                # Nothing else in flight: the stall clock starts with this emit.
                self.last_ack = time.monotonic()

            def on_ack(*_: object) -> None:
                self._acked(covered, covered_bytes)

            return on_ack
        return None

    def _acked(self, count: int, nbytes: int = 0) -> None:
        self.unacked = max(0, self.unacked - count)
        self.unacked_bytes = max(0, self.unacked_bytes - nbytes)
        self.last_ack = time.monotonic()
        self._changed.set()

    async def _wait_for_ack(self) -> None:
        remaining = self.last_ack + self.stall_timeout - time.monotonic()
        if remaining <= 0:
            raise ClientStalled
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except TimeoutError:
            if not self._closed and time.monotonic() - self.last_ack >= self.stall_timeout:
                raise ClientStalled from None
