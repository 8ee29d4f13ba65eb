"""Pacing: `Rate.limit`, at most `per_second` items per second through one node."""

from __future__ import annotations

import asyncio
import weakref
from typing import Annotated, Any

from pydantic import Field

from pipelines.processor import Processor
from pipelines.registry import Registry

__all__ = ["register"]


def register(reg: Registry) -> None:
    slots: weakref.WeakKeyDictionary[Processor, float] = weakref.WeakKeyDictionary()

    @reg.processor(
        "Rate.limit",
        doc="Passes items on at most `per_second` a second, evenly spaced (the node waits).",
    )
    async def limit(
        self: Processor,
        q_elt: tuple[Any, ...],
        per_second: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)],
    ) -> Any:
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Each call takes the next free slot before it awaits: spacing holds at any concurrency.
        slot = max(now, slots.get(self, now))
        slots[self] = slot + 1.0 / per_second
        if slot > now:
            await asyncio.sleep(slot - now)
        return q_elt[0]
