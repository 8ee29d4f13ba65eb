"""Structured data: JSON lines and CSV rows in and out, picking fields (`Json.*`, `Csv.*`)."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any

from pydantic import Field

from pipelines.processor import DROP, Processor
from pipelines.registry import Registry

__all__ = ["MAX_TEXT", "pick", "register"]

#: Longest JSON or CSV text one item may hold (characters).
MAX_TEXT = 1_000_000

FieldPath = Annotated[str, Field(min_length=1, max_length=256)]


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} expects a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{what}: text of {len(value)} characters is over {MAX_TEXT}")
    return value


_MISSING = object()


def pick(value: Any, path: str) -> Any:
    """The part of `value` at a dotted path: object keys, and list indexes as numbers (`a.0.b`);
    a missing part gives the `_MISSING` marker."""
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            value = value[index] if -len(value) <= index < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def register(reg: Registry) -> None:
    @reg.processor("Json.parse", doc="Parses a JSON text (one line of JSON lines) into a value.")
    async def parse(self: Processor, q_elt: tuple[Any, ...]) -> Any:
        text = _text(q_elt[0], "Json.parse")

        def no_constant(name: str) -> Any:
            raise ValueError(f"{name} is not JSON")

        return json.loads(text, parse_constant=no_constant)

    @reg.processor("Json.dumps", doc="Writes a value as one compact line of JSON (JSON lines).")
    async def dumps(self: Processor, q_elt: tuple[Any, ...], sort_keys: bool = False) -> str:
        return json.dumps(q_elt[0], allow_nan=False, separators=(",", ":"), sort_keys=sort_keys,
                          ensure_ascii=False)

    @reg.processor(
        "Json.pick",
        doc="Picks fields by dotted path (a.b.0): one `field`, or `fields` as an object; "
        "drops items that lack one, or with keep_missing puts `default` there.",
    )
    async def pick_(
        self: Processor,
        q_elt: tuple[Any, ...],
        field: FieldPath | None = None,
        fields: Annotated[list[FieldPath], Field(min_length=1, max_length=100)] | None = None,
        default: Any = None,
        keep_missing: bool = False,
    ) -> Any:
        if (field is None) == (fields is None):
            raise ValueError("give exactly one of field and fields")
        value = q_elt[0]
        if field is not None:
            found = pick(value, field)
            if found is _MISSING:
                return default if keep_missing else DROP
            return found
        out: dict[str, Any] = {}
        for path in fields or ():
            found = pick(value, path)
            if found is _MISSING:
                if not keep_missing:
                    return DROP
                found = default
            out[path] = found
        return out

    @reg.processor(
        "Csv.parse",
        doc="Parses one CSV row (a string) into a list of fields, or an object if `header` is "
        "given.",
    )
    async def csv_parse(
        self: Processor,
        q_elt: tuple[Any, ...],
        delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ",",
        header: Annotated[list[Annotated[str, Field(max_length=256)]],
                          Field(max_length=1000)] | None = None,
    ) -> Any:
        text = _text(q_elt[0], "Csv.parse")
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        if len(rows) != 1:
            raise ValueError(f"expected one CSV row, got {len(rows)}")
        row = rows[0]
        if header is None:
            return row
        if len(row) != len(header):
            raise ValueError(f"row has {len(row)} fields, the header {len(header)}")
        return dict(zip(header, row, strict=True))

    @reg.processor(
        "Csv.format",
        doc="Writes a list (or the values of an object, or `columns` of it) as one CSV row.",
    )
    async def csv_format(
        self: Processor,
        q_elt: tuple[Any, ...],
        delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ",",
        columns: Annotated[list[Annotated[str, Field(max_length=256)]],
                           Field(max_length=1000)] | None = None,
    ) -> str:
        value = q_elt[0]
        if isinstance(value, dict):
            row = [value.get(c, "") for c in columns] if columns else list(value.values())
        elif isinstance(value, list | tuple):
            row = list(value)
        else:
            row = [value]
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="").writerow(
            "" if v is None else v if isinstance(v, str | int | float) else json.dumps(v)
            for v in row)
        return out.getvalue()
