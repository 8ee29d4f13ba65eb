"""The original demo's coroutines, kept under their names: `ProcessFunc.*`."""

from __future__ import annotations

import asyncio
from typing import Any

from pipelines.processor import Processor
from pipelines.registry import Registry

from .common import Delay

__all__ = ["DEMO_SLEEPS", "register"]

#: The demo's sleeps (seconds) for coro1, coro2, coro3 at demo_sleep_scale 1.0.
DEMO_SLEEPS = (3.0, 2.0, 1.0)


def register(reg: Registry, scale: float) -> None:
    s1, s2, s3 = (s * scale for s in DEMO_SLEEPS)

    @reg.source("ProcessFunc.inputcoro", doc="Demo source: emits each of strings_from_client.")
    async def inputcoro(self: Processor, q_out: Any, strings_from_client: list[str]) -> None:
        for text in strings_from_client:
            await q_out.put(text)

    @reg.processor("ProcessFunc.coro1", doc="Demo: reverses the string after a sleep (3 s).")
    async def coro1(self: Processor, q_elt: tuple[Any, ...], delay: Delay | None = None) -> str:
        await asyncio.sleep(s1 if delay is None else delay)
        return str(q_elt[0])[::-1]

    @reg.processor("ProcessFunc.coro2", doc="Demo: upper-cases the string after a sleep (2 s).")
    async def coro2(self: Processor, q_elt: tuple[Any, ...], delay: Delay | None = None) -> str:
        await asyncio.sleep(s2 if delay is None else delay)
        return str(q_elt[0]).upper()

    @reg.processor(
        "ProcessFunc.coro3", doc="Demo: appends '-' and the reverse after a sleep (1 s)."
    )
    async def coro3(self: Processor, q_elt: tuple[Any, ...], delay: Delay | None = None) -> str:
        await asyncio.sleep(s3 if delay is None else delay)
        text = str(q_elt[0])
        return text + "-" + text[::-1]

    @reg.processor("ProcessFunc.outputcoro", doc="Demo output: passes its first input on.")
    async def outputcoro(self: Processor, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0]
