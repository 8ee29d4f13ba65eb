"""Grouping items: `Batch.group` (tumbling batches of n) and `Batch.window` (the last n).

The engine's contract is one result (or DROP) per item, and it offers a node no hook at the end
of the stream. So `Batch.group` returns DROP for the first n-1 items of each batch and the list
of all n with the n-th; a last, incomplete batch is not emitted (its items count as `dropped` in
the node's report: choose n to divide the count, or use `Batch.window`). `Batch.window` returns,
for every item, the list of the last n items up to it: nothing is lost. Both keep their state per
node and see the items in arrival order (their bodies never await); with `ordered` and one
upstream node that is the stream's order.
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import Annotated, Any

from pydantic import Field

from pipelines.processor import DROP, Processor
from pipelines.registry import Registry

__all__ = ["MAX_BATCH", "register"]

#: Largest n of a batch or window.
MAX_BATCH = 10_000

Size = Annotated[int, Field(ge=1, le=MAX_BATCH)]


def register(reg: Registry) -> None:
    pending: weakref.WeakKeyDictionary[Processor, list[Any]] = weakref.WeakKeyDictionary()
    windows: weakref.WeakKeyDictionary[Processor, deque[Any]] = weakref.WeakKeyDictionary()

    @reg.processor(
        "Batch.group",
        doc="Groups items n at a time: DROP until a batch is full, then the list of n "
        "(an incomplete last batch is dropped).",
    )
    async def group(self: Processor, q_elt: tuple[Any, ...], n: Size) -> Any:
        batch = pending.setdefault(self, [])
        batch.append(q_elt[0])
        if len(batch) < n:
            return DROP
        pending[self] = []
        return batch

    @reg.processor(
        "Batch.window",
        doc="For each item, the list of the last n items up to it (a sliding window).",
    )
    async def window(self: Processor, q_elt: tuple[Any, ...], n: Size) -> list[Any]:
        last = windows.get(self)
        if last is None or last.maxlen != n:
            last = windows[self] = deque(maxlen=n)
        last.append(q_elt[0])
        return list(last)
