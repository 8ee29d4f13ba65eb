"""The stall watchdog: fails a pipeline in which no node can ever move again.

Every `interval` seconds it looks at the running nodes: when each one waits on a future that only
another node can resolve (`Processor.blocked`: input, or room on the channels in `blocked_on`)
with no item in flight, nothing can move. It then fails the first such node with `Stalled`,
naming every waiting node and the full edges (and the usual cause: a zip node whose inputs carry
different numbers of items).
"""

from __future__ import annotations

import asyncio

from .channel import Channel
from .errors import Stalled
from .inlets import ZipInlet
from .processor import Processor

__all__ = ["STALL_CHECK_INTERVAL", "StallWatch"]

#: Seconds between checks for a pipeline in which no node can move.
STALL_CHECK_INTERVAL = 0.2


class StallWatch:
    """Checks `nodes` (joined by `edges`: upstream name, downstream name, channel) every
    `interval` seconds between `start()` and `stop()`."""

    def __init__(self, nodes: list[Processor], edges: list[tuple[str, str, Channel]],
                 interval: float = STALL_CHECK_INTERVAL) -> None:
        self._nodes = nodes
        self._edges = edges
        self._interval = interval
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self._interval, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def stalled(self) -> Stalled | None:
        """The error to fail the pipeline with, if no node can move now; else None."""
        live = [n for n in self._nodes if n.metrics.status == "running"]
        if not live or not all(n.blocked is not None and not n.blocked.done() and not n.inflight
                               for n in live):
            return None
        parts = []
        for n in live:
            if n.blocked_on:
                edges = ", ".join(f"{a} -> {b} ({len(ch)}/{ch.maxsize})"
                                  for a, b, ch in self._edges
                                  if a == n.name and ch in n.blocked_on)
                parts.append(f"{n.name!r} waits for room on {edges}")
            else:
                parts.append(f"{n.name!r} waits for input")
        zips = [n.name for n in live if isinstance(n.inlet, ZipInlet)]
        hint = (f"; a zip node ({', '.join(zips)}) whose inputs carry different numbers of "
                "items can wait for ever: set its aggregate_inputs to false, or give its "
                "queues more room (queue_size)") if zips else ""
        return Stalled("pipeline stalled, every node waits on another: "
                       + "; ".join(parts) + hint, node=live[0].name)

    def _check(self) -> None:
        self._handle = None
        err = self.stalled()
        if err is None:
            self.start()
            return
        blocked = next(n.blocked for n in self._nodes
                       if n.metrics.status == "running" and n.blocked is not None)
        blocked.set_exception(err)
