"""What the built-in coroutines share: argument types, number checks, per-node counters."""

from __future__ import annotations

import math
import weakref
from typing import Annotated, Any

from pydantic import Field

from pipelines.processor import Processor

__all__ = ["CHUNK", "Count", "Delay", "Text", "counters", "finite", "number"]

#: Items a source hands downstream at once (OutputQueue.put_many): far fewer wake-ups.
CHUNK = 64

Delay = Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=10_000_000)]
Text = Annotated[str, Field(max_length=1_000_000)]

#: Per-node counters of the stateful coroutines (Filter.every, Test.fail_at); dropped with the node.
counters: weakref.WeakKeyDictionary[Processor, int] = weakref.WeakKeyDictionary()


def number(value: Any) -> float | int:
    """`value` if it is a number (not a bool); TypeError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return value


def finite(value: float) -> float | int:
    """`value` unless it is an infinite or NaN float (ValueError)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("result is not a finite number")
    return value
