"""Graph specs on the client side: read them from JSON or YAML files, and the demo graph.

Only the outer shape is checked here (an object with ``nodes`` and ``graph``); the server
validates everything else and reports every problem with its path.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from .errors import GraphFileError

__all__ = ["MAX_GRAPH_FILE_BYTES", "demo_graph", "demo_strings", "load_graph", "parse_graph"]

# The server caps a socket.io message at 1 MB; a bigger file cannot be sent anyway.
MAX_GRAPH_FILE_BYTES = 1_000_000


def demo_strings(count: int = 5, nbytes: int = 8) -> list[str]:
    """Return ``count`` random hex strings, as the original demo client sent."""
    return [secrets.token_hex(nbytes) for _ in range(count)]


def demo_graph(strings: Sequence[str]) -> dict[str, Any]:
    """The original demo graph (examples/graphs/demo.json) fed with ``strings``.

    Two results per string: ``coro1`` fans out to ``coro2`` and ``coro3``, both reach
    ``out``, which merges (``aggregate_inputs: false``).
    """
    return {
        "nodes": {
            "inp": {
                "coro": "ProcessFunc.inputcoro",
                "args": {"strings_from_client": list(strings)},
            },
            "coro1": {"coro": "ProcessFunc.coro1"},
            "coro2": {"coro": "ProcessFunc.coro2"},
            "coro3": {"coro": "ProcessFunc.coro3"},
            "out": {"coro": "ProcessFunc.outputcoro", "properties": {"aggregate_inputs": False}},
        },
        "graph": {
            "inp": ["coro1"],
            "coro1": ["coro2", "coro3"],
            "coro2": ["out"],
            "coro3": ["out"],
            "out": None,
        },
    }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (the server rejects it)")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_graph(text: str, *, fmt: str, source: str = "<graph>") -> dict[str, Any]:
    """Parse a graph spec from ``text`` in format ``"json"`` or ``"yaml"``.

    :raises GraphFileError: when the text does not parse or is not an object with
        ``nodes`` and ``graph``.
    """
    try:
        if fmt == "json":
            data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
        elif fmt == "yaml":
            data = yaml.safe_load(text)
        else:
            raise GraphFileError(source, f"unknown format {fmt!r}; use json or yaml")
    except GraphFileError:
        raise
    except json.JSONDecodeError as exc:
        raise GraphFileError(
            source, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GraphFileError(source, f"invalid YAML{where}: {problem}") from None
    except (ValueError, RecursionError) as exc:
        raise GraphFileError(source, f"invalid {fmt.upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise GraphFileError(
            source,
            f"a graph file holds an object with 'nodes' and 'graph', not {type(data).__name__}",
        )
    missing = [key for key in ("nodes", "graph") if key not in data]
    if missing:
        raise GraphFileError(source, f"missing key(s): {', '.join(missing)}")
    return data


def load_graph(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a graph spec from a ``.json``, ``.yaml`` or ``.yml`` file (``-`` is not accepted).

    Files with another suffix are tried as JSON, then as YAML.

    :raises GraphFileError: when the file cannot be read or parsed.
    """
    p = Path(path)
    source = str(path)
    try:
        size = p.stat().st_size
        if size > MAX_GRAPH_FILE_BYTES:
            raise GraphFileError(source, f"file is {size} bytes; the limit is {MAX_GRAPH_FILE_BYTES}")
        text = p.read_text(encoding="utf-8")
    except GraphFileError:
        raise
    except FileNotFoundError:
        raise GraphFileError(source, "no such file") from None
    except IsADirectoryError:
        raise GraphFileError(source, "is a directory, not a graph file") from None
    except UnicodeDecodeError as exc:
        raise GraphFileError(source, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise GraphFileError(source, exc.strerror or str(exc)) from None
    suffix = p.suffix.lower()
    if suffix == ".json":
        return parse_graph(text, fmt="json", source=source)
    if suffix in (".yaml", ".yml"):
        return parse_graph(text, fmt="yaml", source=source)
    try:
        return parse_graph(text, fmt="json", source=source)
    except GraphFileError:
        return parse_graph(text, fmt="yaml", source=source)
