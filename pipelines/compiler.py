"""The compile step: a graph spec checked in full before anything runs, with every limit.

`compile_spec` parses the spec, checks the graph, resolves each node's coroutine (through a
registry or a `coro_map`), checks its arguments, its properties against `SpecLimits`, the
items the graph can hold at once (`inflight_capacity`) and the placement of pool nodes; it
raises `SpecError` with every issue, or returns what the Plumber builds the nodes from.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import RegistryError, SpecError, SpecIssue
from .registry import CoroInfo, Registry, inspect_coroutine
from .spec import LIBRARY_LIMITS, GraphSpec, SpecLimits, Topology, check_graph, parse_spec

if TYPE_CHECKING:
    from .remote.config import RemoteConfig

__all__ = ["BATCH_MIN", "CompiledNode", "CoroMap", "compile_spec", "inflight_capacity"]

CoroMap = Callable[[Any], Any]
#: Items a node takes per turn at least (its batch), so the batch it may hold at once.
BATCH_MIN = 256


class CompiledNode:
    """A node of a validated spec: its coroutine, checked call arguments and properties."""

    __slots__ = ("name", "info", "args", "spec")

    def __init__(self, name: str, info: CoroInfo, args: dict[str, Any], spec: Any) -> None:
        self.name = name
        self.info = info
        self.args = args
        self.spec = spec


def _unknown(coro: str, known: list[str]) -> str:
    close = difflib.get_close_matches(coro, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return f"unknown coroutine {coro!r}{hint} known: {shown or 'none'}"


def compile_spec(
    raw: Mapping[str, Any] | GraphSpec,
    *,
    registry: Registry | None = None,
    coro_map: CoroMap | None = None,
    limits: SpecLimits = LIBRARY_LIMITS,
    remote: RemoteConfig | None = None,
) -> tuple[GraphSpec, Topology, dict[str, CompiledNode]]:
    """Check everything about a spec before anything runs; raise SpecError with every issue.

    Nodes placed on a pool are checked against `remote` (None: no broker, so no pool)."""
    spec = parse_spec(raw, limits)
    topo, issues = check_graph(spec)
    has_incoming = {d for dests in spec.graph.values() for d in (dests or ())}
    compiled: dict[str, CompiledNode] = {}
    seen: dict[int, CoroInfo] = {}
    known = registry.names() if registry is not None else []
    for name, node in spec.nodes.items():
        path = f"nodes.{name}"
        coro = node.coro
        info: CoroInfo | None = None
        if registry is not None:
            if not isinstance(coro, str):
                issues.append(SpecIssue(f"{path}.coro", "invalid_value",
                                        "coro must be a registry name (a string)"))
            else:
                info = registry.get(coro)
                if info is None:
                    issues.append(SpecIssue(f"{path}.coro", "unknown_coroutine",
                                            f"node {name!r}: {_unknown(coro, known)}"))
        else:
            try:
                fn = coro_map(coro) if coro_map is not None else coro
            except Exception as exc:
                issues.append(SpecIssue(f"{path}.coro", "unknown_coroutine",
                                        f"node {name!r}: coro_map could not resolve {coro!r} "
                                        f"({type(exc).__name__}: {exc})"))
                fn = None
            if fn is not None:
                if isinstance(fn, str):
                    issues.append(SpecIssue(f"{path}.coro", "unknown_coroutine",
                                            f"node {name!r}: {fn!r} is a name; pass a registry "
                                            "or a coro_map that turns names into coroutines"))
                else:
                    try:
                        info = seen.get(id(fn)) or inspect_coroutine(
                            fn, name=coro if isinstance(coro, str) else None, strict=False)
                        seen[id(fn)] = info
                    except RegistryError as exc:
                        issues.append(SpecIssue(f"{path}.coro", "invalid_coroutine",
                                                f"node {name!r}: {exc.message}"))
        if info is None:
            continue
        is_input = name not in has_incoming
        expected = "source" if is_input else "processor"
        if info.kind is not None and info.kind != expected:
            if is_input:
                msg = (f"node {name!r} has no incoming edge, so it is an input node, but "
                       f"{info.name} is a processor coroutine; give it an upstream node or use "
                       "a source coroutine")
            else:
                msg = (f"node {name!r} has incoming edges, but {info.name} is an input "
                       "(source) coroutine; remove its incoming edges or use a processor")
            issues.append(SpecIssue(f"{path}.coro", "kind_mismatch", msg))
        if limits.max_args_bytes is not None:
            try:
                size = len(json.dumps(node.args, allow_nan=False).encode())
            except (TypeError, ValueError):
                size = 0  # not JSON (library callers); the args model still checks it
            if size > limits.max_args_bytes:
                issues.append(SpecIssue(f"{path}.args", "limit_exceeded",
                                        f"args are {size} bytes; at most "
                                        f"{limits.max_args_bytes} allowed"))
                continue
        kwargs, arg_issues = info.validate_args(node.args, f"{path}.args")
        issues.extend(arg_issues)
        props = node.properties
        if limits.max_concurrency is not None and props.concurrency > limits.max_concurrency:
            issues.append(SpecIssue(f"{path}.properties.concurrency", "limit_exceeded",
                                    f"concurrency {props.concurrency}; at most "
                                    f"{limits.max_concurrency} allowed"))
        if limits.max_queue_size is not None and props.queue_size > limits.max_queue_size:
            issues.append(SpecIssue(f"{path}.properties.queue_size", "limit_exceeded",
                                    f"queue_size {props.queue_size}; at most "
                                    f"{limits.max_queue_size} allowed"))
        if not arg_issues:
            compiled[name] = CompiledNode(name, info, kwargs, node)
    if topo is not None and limits.max_inflight_items is not None:
        held = inflight_capacity(spec, topo)
        if held > limits.max_inflight_items:
            issues.append(SpecIssue("nodes", "limit_exceeded",
                                    f"the queues and concurrency of this graph let it hold "
                                    f"{held} items at once; at most {limits.max_inflight_items} "
                                    "allowed (limit max_inflight_items): lower queue_size or "
                                    "concurrency"))
    if topo is not None and any(n.properties.pool is not None for n in spec.nodes.values()):
        from .remote.placement import check_placement

        issues.extend(check_placement(spec, topo, remote.pools if remote else None,
                                      remote is not None))
    if issues or topo is None:
        raise SpecError(issues)
    return spec, topo, compiled


def inflight_capacity(spec: GraphSpec, topo: Topology) -> int:
    """Most items the pipeline can hold at once: its queues (one per edge of a zip node, one
    shared by the inputs of a merge node), each node's concurrency, and the batch of finished
    results a node may hold while it waits for room downstream (its concurrency, at least 256)."""
    held = 0
    for name in topo.order:
        props = spec.nodes[name].properties
        ups = len(topo.upstream[name])
        if ups:
            held += props.concurrency + max(props.concurrency, BATCH_MIN)
            held += props.queue_size * (ups if props.aggregate_inputs and ups > 1 else 1)
    return held
