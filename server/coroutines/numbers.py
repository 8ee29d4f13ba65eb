"""Numbers: `Number.*`."""

from __future__ import annotations

from typing import Any

from pipelines.processor import Processor
from pipelines.registry import Registry

from .common import finite, number

__all__ = ["register"]

def register(reg: Registry) -> None:
    @reg.processor("Number.add", doc="Adds n to a number.")
    async def add(self: Processor, q_elt: tuple[Any, ...], n: int | float = 1) -> float | int:
        return finite(number(q_elt[0]) + n)

    @reg.processor("Number.multiply", doc="Multiplies a number by factor.")
    async def multiply(self: Processor, q_elt: tuple[Any, ...], factor: int | float = 2) -> float | int:
        return finite(number(q_elt[0]) * factor)

    @reg.processor("Number.square", doc="Squares a number.")
    async def square(self: Processor, q_elt: tuple[Any, ...]) -> float | int:
        value = number(q_elt[0])
        if isinstance(value, int) and abs(value) > 10**150:
            raise ValueError("number too large to square")
        return finite(value * value)

    @reg.processor("Number.sum", doc="Sums the inputs of one call (a zip of numbers).")
    async def sum_(self: Processor, q_elt: tuple[Any, ...]) -> float | int:
        return finite(sum(number(part) for part in q_elt))

    @reg.processor("Number.parse", doc="Parses a string as an int, or a float if it has a point.")
    async def parse(self: Processor, q_elt: tuple[Any, ...]) -> float | int:
        text = str(q_elt[0]).strip()
        if len(text) > 100:
            raise ValueError("number text longer than 100 characters")
        return finite(float(text)) if any(c in text for c in ".eE") else int(text)
