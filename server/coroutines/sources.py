"""Sources: `Source.items`, `Source.range`, `Source.lines`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from pipelines.processor import Processor
from pipelines.registry import Registry

from .common import CHUNK, Text

__all__ = ["register"]

def register(reg: Registry) -> None:
    @reg.source("Source.items", doc="Emits each item of the given list, in order.")
    async def items(self: Processor, output_q: Any, items: list[Any]) -> None:
        for start in range(0, len(items), CHUNK):
            await output_q.put_many(items[start : start + CHUNK])

    @reg.source("Source.range", doc="Emits the integers start, start+step, ... below stop.")
    async def range_(
        self: Processor,
        output_q: Any,
        stop: Annotated[int, Field(ge=-(10**15), le=10**15)],
        start: Annotated[int, Field(ge=-(10**15), le=10**15)] = 0,
        step: Annotated[int, Field(ge=-(10**15), le=10**15)] = 1,
    ) -> None:
        if step == 0:
            raise ValueError("step must not be 0")
        numbers = range(start, stop, step)
        for first in range(0, len(numbers), CHUNK):
            await output_q.put_many(list(numbers[first : first + CHUNK]))

    @reg.source("Source.lines", doc="Emits each line of the given text (without line endings).")
    async def lines(self: Processor, output_q: Any, text: Text, skip_empty: bool = False) -> None:
        lines = [ln for ln in text.splitlines() if not skip_empty or ln.strip()]
        for start in range(0, len(lines), CHUNK):
            await output_q.put_many(lines[start : start + CHUNK])
