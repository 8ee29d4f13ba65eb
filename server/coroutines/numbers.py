"""Numbers: `Number.*`."""

from __future__ import annotations

import sys
from typing import Any

from pipelines.errors import ItemTooLarge
from pipelines.processor import Processor
from pipelines.registry import Registry

from .common import finite, number

__all__ = ["MAX_INT_BITS", "register"]

#: Integers stay printable: Python refuses to turn an int of more than 4,300 digits into text
#: (sys.get_int_max_str_digits), so no built-in makes one (about 14,000 bits is 4,200 digits).
MAX_INT_BITS = min(14_000, int((sys.get_int_max_str_digits() or 10**9) * 3.3))


def _bits_ok(self: Processor, bits: int) -> None:
    """Raise ItemTooLarge before building an int of about `bits` bits past MAX_INT_BITS."""
    if bits > MAX_INT_BITS:
        raise ItemTooLarge(
            f"the result would have about {int(bits * 0.30103)} digits; at most "
            f"{int(MAX_INT_BITS * 0.30103)} allowed", node=self.name)


def _checked(self: Processor, value: float | int) -> float | int:
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        _bits_ok(self, value.bit_length())
    return finite(value)

def register(reg: Registry) -> None:
    @reg.processor("Number.add", doc="Adds n to a number.")
    async def add(self: Processor, q_elt: tuple[Any, ...], n: int | float = 1) -> float | int:
        return _checked(self, number(q_elt[0]) + n)

    @reg.processor("Number.multiply", doc="Multiplies a number by factor.")
    async def multiply(self: Processor, q_elt: tuple[Any, ...], factor: int | float = 2) -> float | int:
        value = number(q_elt[0])
        if isinstance(value, int) and isinstance(factor, int):
            _bits_ok(self, value.bit_length() + factor.bit_length())
        return _checked(self, value * factor)

    @reg.processor("Number.square", doc="Squares a number.")
    async def square(self: Processor, q_elt: tuple[Any, ...]) -> float | int:
        value = number(q_elt[0])
        if isinstance(value, int):
            _bits_ok(self, 2 * value.bit_length())
        return _checked(self, value * value)

    @reg.processor("Number.sum", doc="Sums the inputs of one call (a zip of numbers).")
    async def sum_(self: Processor, q_elt: tuple[Any, ...]) -> float | int:
        return _checked(self, sum(number(part) for part in q_elt))

    @reg.processor("Number.parse", doc="Parses a string as an int, or a float if it has a point.")
    async def parse(self: Processor, q_elt: tuple[Any, ...]) -> float | int:
        text = str(q_elt[0]).strip()
        if len(text) > 100:
            raise ValueError("number text longer than 100 characters")
        return finite(float(text)) if any(c in text for c in ".eE") else int(text)
