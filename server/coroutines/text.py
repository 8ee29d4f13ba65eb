"""Text transforms: `Text.*`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from pipelines.processor import Processor
from pipelines.registry import Registry

__all__ = ["register"]

def register(reg: Registry) -> None:
    @reg.processor("Text.upper", doc="Upper-cases a string.")
    async def upper(self: Processor, q_elt: tuple[Any, ...]) -> str:
        return str(q_elt[0]).upper()

    @reg.processor("Text.lower", doc="Lower-cases a string.")
    async def lower(self: Processor, q_elt: tuple[Any, ...]) -> str:
        return str(q_elt[0]).lower()

    @reg.processor("Text.reverse", doc="Reverses a string.")
    async def reverse(self: Processor, q_elt: tuple[Any, ...]) -> str:
        return str(q_elt[0])[::-1]

    @reg.processor("Text.strip", doc="Strips whitespace (or the given characters) at both ends.")
    async def strip(
        self: Processor, q_elt: tuple[Any, ...], chars: Annotated[str, Field(max_length=256)] | None = None
    ) -> str:
        return str(q_elt[0]).strip(chars)

    @reg.processor("Text.replace", doc="Replaces every occurrence of old by new.")
    async def replace(
        self: Processor,
        q_elt: tuple[Any, ...],
        old: Annotated[str, Field(min_length=1, max_length=1024)],
        new: Annotated[str, Field(max_length=1024)] = "",
    ) -> str:
        return str(q_elt[0]).replace(old, new)

    @reg.processor("Text.join", doc="Joins the inputs of one call (a zip) with a separator.")
    async def join(
        self: Processor, q_elt: tuple[Any, ...], sep: Annotated[str, Field(max_length=256)] = " "
    ) -> str:
        return sep.join(str(part) for part in q_elt)

    @reg.processor("Text.length", doc="The length of a string.")
    async def length(self: Processor, q_elt: tuple[Any, ...]) -> int:
        return len(str(q_elt[0]))

    @reg.processor("Text.format", doc="Formats the inputs with a str.format template, e.g. '{0}!'")
    async def format_(
        self: Processor, q_elt: tuple[Any, ...], template: Annotated[str, Field(max_length=1024)]
    ) -> str:
        # Positional fields only: attribute and index lookups could reach object internals.
        if any(c in template for c in ".[!"):
            raise ValueError("template may use only plain positional fields like {0}")
        return template.format(*(str(part) for part in q_elt))
