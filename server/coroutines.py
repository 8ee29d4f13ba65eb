"""The service's registry: the only coroutines a client can name in a spec.

Nothing here touches files, the network or processes. The original demo's `ProcessFunc.*`
coroutines are kept under their names; useful sources, transforms, filters and sinks sit beside
them; the faulty `Test.*` nodes exist only when the `test_coroutines` setting is on.
"""

from __future__ import annotations

import asyncio
import math
import operator
import time
import weakref
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field

from pipelines.processor import DROP, Processor
from pipelines.registry import Registry

__all__ = ["build_registry", "DEMO_SLEEPS"]

#: Items a source hands downstream at once (OutputQueue.put_many): far fewer wake-ups.
_CHUNK = 64

#: The demo's sleeps (seconds) for coro1, coro2, coro3 at demo_sleep_scale 1.0.
DEMO_SLEEPS = (3.0, 2.0, 1.0)

Delay = Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=10_000_000)]
Text = Annotated[str, Field(max_length=1_000_000)]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return value


def _finite(value: float) -> float | int:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("result is not a finite number")
    return value


def _register_demo(reg: Registry, scale: float) -> None:
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


def _register_sources(reg: Registry) -> None:
    @reg.source("Source.items", doc="Emits each item of the given list, in order.")
    async def items(self: Processor, output_q: Any, items: list[Any]) -> None:
        for start in range(0, len(items), _CHUNK):
            await output_q.put_many(items[start : start + _CHUNK])

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
        for first in range(0, len(numbers), _CHUNK):
            await output_q.put_many(list(numbers[first : first + _CHUNK]))

    @reg.source("Source.lines", doc="Emits each line of the given text (without line endings).")
    async def lines(self: Processor, output_q: Any, text: Text, skip_empty: bool = False) -> None:
        lines = [ln for ln in text.splitlines() if not skip_empty or ln.strip()]
        for start in range(0, len(lines), _CHUNK):
            await output_q.put_many(lines[start : start + _CHUNK])


def _register_text(reg: Registry) -> None:
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


def _register_numbers(reg: Registry) -> None:
    @reg.processor("Number.add", doc="Adds n to a number.")
    async def add(self: Processor, q_elt: tuple[Any, ...], n: int | float = 1) -> float | int:
        return _finite(_number(q_elt[0]) + n)

    @reg.processor("Number.multiply", doc="Multiplies a number by factor.")
    async def multiply(self: Processor, q_elt: tuple[Any, ...], factor: int | float = 2) -> float | int:
        return _finite(_number(q_elt[0]) * factor)

    @reg.processor("Number.square", doc="Squares a number.")
    async def square(self: Processor, q_elt: tuple[Any, ...]) -> float | int:
        value = _number(q_elt[0])
        if isinstance(value, int) and abs(value) > 10**150:
            raise ValueError("number too large to square")
        return _finite(value * value)

    @reg.processor("Number.sum", doc="Sums the inputs of one call (a zip of numbers).")
    async def sum_(self: Processor, q_elt: tuple[Any, ...]) -> float | int:
        return _finite(sum(_number(part) for part in q_elt))

    @reg.processor("Number.parse", doc="Parses a string as an int, or a float if it has a point.")
    async def parse(self: Processor, q_elt: tuple[Any, ...]) -> float | int:
        text = str(q_elt[0]).strip()
        if len(text) > 100:
            raise ValueError("number text longer than 100 characters")
        return _finite(float(text)) if any(c in text for c in ".eE") else int(text)


def _register_flow(reg: Registry) -> None:
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
            keep = _COMPARE[op](item, value)
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
        index = _counters.get(self, 0)
        _counters[self] = index + 1
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
        return list(q_elt)


#: Per-node counters of the stateful coroutines (Filter.every, Test.fail_at); dropped with the node.
_counters: weakref.WeakKeyDictionary[Processor, int] = weakref.WeakKeyDictionary()


def _register_test(reg: Registry) -> None:
    @reg.processor("Test.fail_at", doc="TEST ONLY: raises on the item with index k (from 0).")
    async def fail_at(
        self: Processor,
        q_elt: tuple[Any, ...],
        k: Count = 0,
        message: Annotated[str, Field(max_length=1024)] = "planned failure",
    ) -> Any:
        index = _counters.get(self, 0)
        _counters[self] = index + 1
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
        index = _counters.get(self, 0)
        _counters[self] = index + 1
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


def build_registry(*, demo_sleep_scale: float = 1.0, test_coroutines: bool = False) -> Registry:
    """A frozen registry of the service's coroutines.

    :param demo_sleep_scale: factor on the demo's 3/2/1 s sleeps (tests use a small one).
    :param test_coroutines: also register the faulty `Test.*` nodes (tests only).
    """
    reg = Registry()
    _register_demo(reg, demo_sleep_scale)
    _register_sources(reg)
    _register_text(reg)
    _register_numbers(reg)
    _register_flow(reg)
    if test_coroutines:
        _register_test(reg)
    reg.freeze()
    return reg
