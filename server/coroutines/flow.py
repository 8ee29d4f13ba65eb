"""Filters and flow control: `Filter.*`, `Flow.*`."""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field

from pipelines.processor import DROP, Processor
from pipelines.registry import Registry
from pipelines.sizes import check_size, json_size

from .common import Delay, counters

__all__ = ["COMPARE", "register"]

COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def register(reg: Registry) -> None:
    @reg.processor(
        "Filter.compare",
        doc="Keeps items for which `item <op> value` holds (op: eq ne lt le gt ge); drops others.",
    )
    async def compare(
        self: Processor,
        q_elt: tuple[Any, ...],
        op: Literal["eq", "ne", "lt", "le", "gt", "ge"],
        value: float | str,
    ) -> Any:
        item = q_elt[0]
        try:
            keep = COMPARE[op](item, value)
        except TypeError:
            keep = False
        return item if keep else DROP

    @reg.processor("Filter.contains", doc="Keeps strings containing the substring; drops others.")
    async def contains(
        self: Processor,
        q_elt: tuple[Any, ...],
        substring: Annotated[str, Field(max_length=1024)],
        ignore_case: bool = False,
    ) -> Any:
        item = q_elt[0]
        text, needle = str(item), substring
        if ignore_case:
            text, needle = text.lower(), needle.lower()
        return item if needle in text else DROP

    @reg.processor("Filter.every", doc="Keeps every n-th item (n=2: items 0, 2, 4, ...).")
    async def every(
        self: Processor, q_elt: tuple[Any, ...], n: Annotated[int, Field(ge=1, le=10**9)] = 2
    ) -> Any:
        index = counters.get(self, 0)
        counters[self] = index + 1
        return q_elt[0] if index % n == 0 else DROP

    @reg.processor("Flow.delay", doc="Passes the item on after sleeping `seconds`.")
    async def delay(self: Processor, q_elt: tuple[Any, ...], seconds: Delay = 0.1) -> Any:
        await asyncio.sleep(seconds)
        return q_elt[0]

    @reg.processor("Flow.identity", doc="Passes its first input on unchanged (a sink or a relay).")
    async def identity(self: Processor, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0]

    @reg.processor(
        "Flow.timestamp",
        doc="Passes [item, t] on, t the server's wall clock in seconds (to measure latency).",
    )
    async def timestamp(self: Processor, q_elt: tuple[Any, ...]) -> list[Any]:
        return [q_elt[0], time.time()]

    @reg.processor("Flow.collect", doc="Passes all inputs of one call on as a list (zip result).")
    async def collect(self: Processor, q_elt: tuple[Any, ...]) -> list[Any]:
        limit = self.max_item_bytes
        if limit is not None:
            check_size(self, json_size(q_elt, limit), "the list")
        return list(q_elt)
