"""Short, safe text of user data for error reports and logs.

`repr()` of an item can fail or cost a lot: Python refuses to print an int of more than 4,300
digits (ValueError), a 1 MB string makes a 1 MB repr, and a deep nest recurses. An item error
report must never fail the run, so every repr of user data goes through `safe_repr`.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = ["safe_repr", "safe_str"]


def _describe(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<int of about {(value.bit_length() * 1233 >> 12) + 1} digits>"
    return f"<{type(value).__name__} that cannot be shown>"


class _SafeRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # more digits than Python prints
            return _describe(x)


_REPR = _SafeRepr()
_REPR.maxlevel = 4
_REPR.maxstring = 160
_REPR.maxlong = 60
_REPR.maxother = 160
for _name in ("maxtuple", "maxlist", "maxarray", "maxdict", "maxset", "maxfrozenset", "maxdeque"):
    setattr(_REPR, _name, 8)


def safe_repr(value: Any, limit: int = 200) -> str:
    """`repr(value)`, bounded to `limit` characters; never raises."""
    try:
        text = _REPR.repr(value)
    except Exception:
        text = _describe(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_str(value: Any, limit: int = 500) -> str:
    """`str(value)` (an exception's message, say), bounded to `limit` characters; never raises."""
    try:
        text = str(value)
    except Exception:
        text = _describe(value)
    return text if len(text) <= limit else text[:limit]
