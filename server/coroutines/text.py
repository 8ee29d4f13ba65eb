"""Text transforms: `Text.*`."""

from __future__ import annotations

import re
import string
from typing import Annotated, Any

from pydantic import Field

from pipelines.processor import Processor
from pipelines.registry import Registry
from pipelines.sizes import check_size, json_size

__all__ = ["register"]

_WIDTH = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)")


def format_size(template: str, parts: list[str]) -> int:
    """An upper bound on the length of `template.format(*parts)`, computed without formatting:
    a field takes its width or its text, whichever is longer. Raises ValueError for templates
    that are not plain positional fields (nested fields in a format spec included)."""
    size = 0
    auto = 0
    for literal, field, spec, conversion in string.Formatter().parse(template):
        size += len(literal)
        if field is None:
            continue
        if conversion is not None or (spec and "{" in spec):
            raise ValueError("template may use only plain positional fields like {0}")
        if field == "":
            index, auto = auto, auto + 1
        elif field.isdigit():
            index = int(field)
        else:
            raise ValueError("template may use only plain positional fields like {0}")
        text = len(parts[index]) if index < len(parts) else 0
        match = _WIDTH.match(spec or "")
        width = int(match.group(1)) if match and match.group(1) else 0
        size += max(width, text) + 4 * len(spec or "")
    return size

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
        text = str(q_elt[0])
        if len(new) > len(old):
            check_size(self, len(text) + text.count(old) * (len(new) - len(old)), "the text")
        return text.replace(old, new)

    @reg.processor("Text.join", doc="Joins the inputs of one call (a zip) with a separator.")
    async def join(
        self: Processor, q_elt: tuple[Any, ...], sep: Annotated[str, Field(max_length=256)] = " "
    ) -> str:
        limit = self.max_item_bytes or 0
        if limit:
            check_size(self, sum(json_size(p, limit) for p in q_elt) + len(sep) * len(q_elt),
                       "the joined text")
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
        parts = [str(part) for part in q_elt]
        check_size(self, format_size(template, parts), "the formatted text")
        return template.format(*parts)
