"""How big an item value is, as JSON, measured cheaply and only as far as it matters.

`json_size` walks a value and stops as soon as it is known to be over the limit, so a value made
of shared references (a list holding the same big list twice, a thousand levels deep) costs at
most about `limit` steps, never its full (exponential) size. Text counts its UTF-8 bytes,
integers their decimal digits, containers their parts plus separators.

A node with `max_item_bytes` set refuses to pass on a bigger value (`ItemTooLarge`, an item error
handled by its `on_error`); coroutines that grow data call `check_size` with the size they are
about to build, before building it.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

from .errors import ItemTooLarge

__all__ = ["check_size", "int_digits", "json_size", "oversized", "quick_bounds"]

_SMALL = (bool, type(None))


class _Sized(Protocol):
    @property
    def name(self) -> str: ...

    max_item_bytes: int | None


def int_digits(value: int) -> int:
    """An upper bound on the decimal digits of `value` (sign included), without printing it."""
    return (value.bit_length() * 1233 >> 12) + 2


def _text_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def json_size(value: Any, limit: int) -> int:
    """The size of `value` as JSON in bytes, or some number above `limit` once it is over."""
    total = 0
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        v = pop()
        t = type(v)
        if t is str:
            n = len(v)
            total += 2 + (n if n > limit else _text_bytes(v))
        elif t is int:
            total += int_digits(v)
        elif t is bytes or t is bytearray:
            total += 2 + len(v)
        elif t is float:
            total += 24
        elif t in _SMALL:
            total += 5
        elif t is list or t is tuple or t is set or t is frozenset:
            total += 1 + len(v)
            if total > limit:
                return total
            stack.extend(v)
        elif t is dict:
            total += 1 + 2 * len(v)
            if total > limit:
                return total
            for k, item in v.items():
                push(k)
                push(item)
        elif isinstance(v, str):
            total += 2 + _text_bytes(str.__str__(v))
        elif isinstance(v, int):
            total += int_digits(v)
        elif isinstance(v, bytes | bytearray | memoryview):
            total += 2 + len(v)
        else:  # other objects (library use): counted as a small scalar
            total += 16
        if total > limit:
            return total
    return total


@functools.cache
def quick_bounds(limit: int) -> tuple[int, int, int]:
    """(text_max, int_low, int_high) under `limit`: a str of at most text_max characters, an int
    strictly between the other two, a float, None or a bool fit, with no need to measure."""
    big = 1 << ((limit - 2) * 3)
    return limit // 4 - 2, -big, big


def oversized(values: list[Any], limit: int) -> list[int]:
    """Indexes of the values over `limit` bytes: most often none, found quickly. A batch of
    only numbers, only short strings or only None is checked at C speed (min/max, join, count);
    anything else costs a type check per value, and only what may be big is measured."""
    if not values:
        return []
    text_max, low, high = quick_bounds(limit)
    first = type(values[0])
    if first is int or first is float:
        try:  # numbers only (a str, None or a list raises TypeError), all within bounds
            if low < min(values) and max(values) < high:
                return []
        except Exception:  # noqa: BLE001 - whatever the values' comparisons raise: measure them
            pass
    elif first is str:
        try:  # sum of lengths first, so that join never copies more than text_max characters
            if sum(map(len, values)) <= text_max and len("".join(values)) <= text_max:
                return []
        except Exception:  # noqa: BLE001 - not only strings: measure them one by one
            pass
    elif values[0] is None and values.count(None) == len(values):
        return []
    for v in values:
        t = type(v)
        if t is int:
            if low < v < high:
                continue
        elif t is str:
            if len(v) <= text_max:
                continue
        elif v is None or t is float or t is bool:
            continue
        break  # something to measure: the slow pass
    else:
        return []
    return [i for i, v in enumerate(values) if json_size(v, limit) > limit]


def check_size(node: _Sized, size: int, what: str = "result") -> None:
    """Raise ItemTooLarge if a value of `size` bytes is over the node's `max_item_bytes`.

    Coroutines that grow data call this with the size they are about to build, before building it.
    """
    limit = node.max_item_bytes
    if limit is not None and size > limit:
        raise ItemTooLarge(
            f"{what} would be {size} bytes, over the limit of {limit} bytes per item",
            node=node.name,
        )
