"""Untrusted JSON: a strict decoder for socket.io packets and a depth-capped payload check.

The standard decoder accepts NaN, Infinity, 1e999 (as inf), duplicate keys (last wins) and lone
surrogates, and raises RecursionError on very deep input. The decoder here never raises for bad
JSON inside an event: it marks what it found, and `check_payload` (an iterative walk, so no
recursion limit) turns the marks into one clear error with a path before pydantic sees anything.
"""

from __future__ import annotations

import json
import math
from typing import Any

from socketio import packet as sio_packet  # type: ignore[import-untyped]

__all__ = [
    "CheckedPayload",
    "INVALID_EVENT",
    "OVER_BUDGET_EVENT",
    "PayloadProblem",
    "SafePacket",
    "check_payload",
    "loads_checked",
]

#: Event name the decoder substitutes for a packet whose JSON could not be decoded; the
#: handlers answer it with `invalid_payload`. A NUL keeps it out of any sensible client's way.
INVALID_EVENT = "\x00invalid_payload"
#: Event name a frame is cut down to, undecoded, when its client address is over its CPU budget.
OVER_BUDGET_EVENT = "\x00over_budget"

_MAX_INT_DIGITS = 100


class _BadNumber:
    """Marks NaN, Infinity, 1e999 or an integer of more than 100 digits found by the decoder."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text[:40]


class _DuplicateKeys(dict):  # type: ignore[type-arg]
    """A decoded object in which some key occurred more than once."""

    duplicate: str = ""


def _parse_constant(text: str) -> _BadNumber:
    return _BadNumber(text)


def _parse_float(text: str) -> float | _BadNumber:
    value = float(text)
    return value if math.isfinite(value) else _BadNumber(text)


def _parse_int(text: str) -> int | _BadNumber:
    return int(text) if len(text) <= _MAX_INT_DIGITS else _BadNumber(text)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        marked = _DuplicateKeys(result)
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                marked.duplicate = key
                break
            seen.add(key)
        return marked
    return result


class _StrictJSON:
    """The `json` module interface socket.io's packet class needs, with the marking decoder."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **_: Any) -> Any:
        return json.loads(
            text,
            parse_constant=_parse_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_pairs,
        )


def loads_checked(text: str | bytes) -> Any:
    """Decode untrusted JSON with the marking decoder (HTTP bodies); raises ValueError if not JSON."""
    try:
        return _StrictJSON.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


class CheckedPayload(dict):  # type: ignore[type-arg]
    """An outgoing payload whose values were checked to be plain JSON (so: no bytes).

    SafePacket does not scan it for binary attachments, which for a big `results` batch cost
    more than encoding it.
    """

    __slots__ = ()


class SafePacket(sio_packet.Packet):  # type: ignore[misc]
    """socket.io packet class that decodes with the strict decoder and survives undecodable JSON.

    An EVENT whose JSON does not decode (or is not `[name, ...args]`) becomes the event
    INVALID_EVENT carrying the reason, so the client gets an answer instead of silence.
    """

    json = _StrictJSON

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        """Whether `data` holds bytes (then it goes out as attachments).

        The inherited check recurses with reduce() and builds a list per container: for a
        `results` batch of 128 items it cost more than encoding the JSON. Same answer, iterative.
        """
        stack = [data]
        while stack:
            item = stack.pop()
            kind = type(item)
            if kind is str or kind is int or kind is float or item is None or kind is bool:
                continue
            if kind is CheckedPayload:
                continue
            if kind is dict:
                stack.extend(item.values())
            elif kind is list or kind is tuple:
                stack.extend(item)
            elif isinstance(item, bytes | bytearray):
                return True
            elif isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list | tuple):
                stack.extend(item)
        return False

    def decode(self, encoded_packet: Any) -> int:
        try:
            count: int = super().decode(encoded_packet)
        except (ValueError, RecursionError) as exc:
            if self.packet_type not in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
                raise
            reason = "JSON nested too deep" if isinstance(exc, RecursionError) else "not JSON"
            self.data = [INVALID_EVENT, reason]
            return 0
        if self.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            data = self.data
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                self.data = [INVALID_EVENT, "an event is a JSON array [name, ...arguments]"]
        return count


class PayloadProblem(ValueError):
    """Raised by check_payload: what is wrong and where (`spec.nodes.a.args`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _bad_string(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def check_payload(value: Any, *, max_depth: int, path: str = "") -> None:
    """Raise PayloadProblem unless `value` is plain JSON data nested at most `max_depth` deep.

    Rejects NaN/Infinity/huge numbers, duplicate keys, lone surrogates, binary attachments and
    any non-JSON type. Iterative: a payload nested 300,000 deep costs no recursion.
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, path)]
    while stack:
        item, depth, where = stack.pop()
        kind = type(item)
        if item is None or kind is bool or kind is int:
            continue
        if kind is str:
            if _bad_string(item):
                raise PayloadProblem(where or "payload", "string contains a lone surrogate")
            continue
        if kind is float:
            if not math.isfinite(item):
                raise PayloadProblem(where or "payload", "numbers must be finite")
            continue
        if kind is _BadNumber:
            raise PayloadProblem(
                where or "payload", f"not an acceptable JSON number: {item.text!r}"
            )
        if kind is CheckedPayload:  # checked already (by the frame decoder, off the loop)
            continue
        if kind is dict or kind is _DuplicateKeys:
            if kind is _DuplicateKeys:
                raise PayloadProblem(
                    where or "payload", f"duplicate key {item.duplicate[:60]!r}"
                )
            if depth >= max_depth:
                raise PayloadProblem(where or "payload", f"nested deeper than {max_depth} levels")
            for key, sub in item.items():
                if type(key) is not str or _bad_string(key):
                    raise PayloadProblem(where or "payload", "object key is not a valid string")
                stack.append((sub, depth + 1, _join(where, key[:60])))
            continue
        if kind is list:
            if depth >= max_depth:
                raise PayloadProblem(where or "payload", f"nested deeper than {max_depth} levels")
            for index, sub in enumerate(item):
                stack.append((sub, depth + 1, _join(where, index)))
            continue
        if kind is bytes or kind is bytearray:
            raise PayloadProblem(where or "payload", "binary attachments are not accepted")
        raise PayloadProblem(where or "payload", f"unsupported value of type {kind.__name__}")
