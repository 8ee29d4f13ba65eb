"""Faulty coroutines for tests only (`Test.*`, behind the `test_coroutines` setting)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from pydantic import Field

from pipelines.processor import Processor
from pipelines.registry import Registry

from .common import Count, counters

__all__ = ["register"]

def register(reg: Registry) -> None:
    @reg.processor("Test.fail_at", doc="TEST ONLY: raises on the item with index k (from 0).")
    async def fail_at(
        self: Processor,
        q_elt: tuple[Any, ...],
        k: Count = 0,
        message: Annotated[str, Field(max_length=1024)] = "planned failure",
    ) -> Any:
        index = counters.get(self, 0)
        counters[self] = index + 1
        if index == k:
            raise RuntimeError(f"{message} at item {k}")
        return q_elt[0]

    @reg.processor("Test.fail_when", doc="TEST ONLY: raises on items equal to `value`.")
    async def fail_when(self: Processor, q_elt: tuple[Any, ...], value: Any) -> Any:
        if q_elt[0] == value:
            raise RuntimeError(f"planned failure on {value!r}")
        return q_elt[0]

    @reg.processor("Test.hang", doc="TEST ONLY: never returns (from item k on).")
    async def hang(self: Processor, q_elt: tuple[Any, ...], k: Count = 0) -> Any:
        index = counters.get(self, 0)
        counters[self] = index + 1
        if index >= k:
            await asyncio.Event().wait()
        return q_elt[0]

    @reg.processor("Test.block", doc="TEST ONLY: blocks the event loop for `seconds` (max 5).")
    async def block(
        self: Processor,
        q_elt: tuple[Any, ...],
        seconds: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 0.5,
    ) -> Any:
        time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is this node's whole point
        return q_elt[0]

    @reg.processor("Test.big", doc="TEST ONLY: returns a string of `size` characters.")
    async def big(
        self: Processor, q_elt: tuple[Any, ...], size: Annotated[int, Field(ge=0, le=50_000_000)]
    ) -> str:
        return "x" * size

    @reg.processor("Test.unserializable", doc="TEST ONLY: returns an object JSON cannot encode.")
    async def unserializable(self: Processor, q_elt: tuple[Any, ...]) -> Any:
        return object()

    @reg.source("Test.fail_source", doc="TEST ONLY: emits `count` integers, then raises.")
    async def fail_source(self: Processor, output_q: Any, count: Count = 0) -> None:
        for n in range(count):
            await output_q.put(n)
        raise RuntimeError(f"planned source failure after {count} items")
