"""The graph spec: pydantic models of the original dict format, its limits, and the graph checks."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from .errors import SpecError, SpecIssue

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_QUEUE_SIZE",
    "NodeName",
    "NodeProperties",
    "NodeSpec",
    "GraphSpec",
    "SpecLimits",
    "LIBRARY_LIMITS",
    "Topology",
    "parse_spec",
    "check_graph",
    "issues_from_validation",
]

#: Enough in-flight items per node that IO-bound coroutines overlap like the original's
#: task-per-item design, while a node can never hold more than this many items at once.
DEFAULT_CONCURRENCY = 64
#: Items buffered on each edge before the producer waits.
DEFAULT_QUEUE_SIZE = 64

NodeName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
CoroName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class NodeProperties(BaseModel):
    """How one node runs. Every field is optional; the defaults suit IO-bound coroutines."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    aggregate_inputs: bool = Field(
        True,
        description="true: one item from each upstream node per call, zipped in upstream order; "
        "false: each upstream item alone as a 1-tuple (merge).",
    )
    concurrency: int = Field(DEFAULT_CONCURRENCY, ge=1, description="Items processed at once.")
    ordered: bool = Field(True, description="Results leave in input order.")
    queue_size: int = Field(DEFAULT_QUEUE_SIZE, ge=1, description="Capacity of each input edge.")
    on_error: Literal["skip", "retry", "fail"] = Field(
        "skip", description="skip: count and go on; retry: try again, then skip; fail: stop all."
    )
    retries: int = Field(3, ge=0, le=100, description="Tries after the first, with on_error retry.")
    backoff: float = Field(
        0.1, ge=0, le=60, allow_inf_nan=False, description="First retry delay; doubles each try."
    )
    timeout: float | None = Field(
        None, gt=0, le=86_400, allow_inf_nan=False, description="Seconds allowed per item."
    )
    pool: str | None = Field(
        None, min_length=1, max_length=32,
        description="Run this node on the workers of this pool (distributed mode); none: here.",
    )


class NodeSpec(BaseModel):
    """One node: the coroutine it runs, its keyword arguments and its run properties."""

    model_config = ConfigDict(extra="forbid")

    coro: CoroName | SkipJsonSchema[Callable[..., Any]] = Field(
        description="A registry name (service) or whatever the library's coro_map resolves."
    )
    args: dict[str, Any] = Field(default_factory=dict)
    properties: NodeProperties = Field(default_factory=NodeProperties)


class GraphSpec(BaseModel):
    """A pipeline: its nodes and, for each node, the nodes its results go to."""

    model_config = ConfigDict(extra="forbid")

    nodes: dict[NodeName, NodeSpec]
    graph: dict[NodeName, list[NodeName] | None]

    @field_validator("graph", mode="before")
    @classmethod
    def _tuples_to_lists(cls, value: Any) -> Any:
        # The original format writes edges as tuples; a single name is a common slip.
        if isinstance(value, Mapping):
            return {
                k: (list(v) if isinstance(v, tuple) else [v] if isinstance(v, str) else v)
                for k, v in value.items()
            }
        return value

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The published JSON Schema of the spec."""
        return cls.model_json_schema()


class SpecLimits(BaseModel):
    """Caps a spec must stay within (None: no cap). The service reads them from its settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_nodes: int | None = 64
    max_edges: int | None = 256
    max_args_bytes: int | None = 65_536
    max_concurrency: int | None = 256
    max_queue_size: int | None = 1024
    max_source_items: int | None = 100_000
    max_item_bytes: int | None = 1_000_000
    max_pipeline_items: int | None = 10_000_000
    max_inflight_items: int | None = 65_536


#: Generous limits for in-process library use, where the caller is trusted.
LIBRARY_LIMITS = SpecLimits(
    max_nodes=100_000,
    max_edges=1_000_000,
    max_args_bytes=None,
    max_concurrency=1_000_000,
    max_queue_size=100_000_000,
    max_source_items=None,
    max_item_bytes=None,
    max_pipeline_items=None,
    max_inflight_items=None,
)


@dataclass(slots=True)
class Topology:
    """The checked shape of a graph: edges both ways, inputs, outputs and a topological order."""

    order: list[str]
    upstream: dict[str, list[str]]
    downstream: dict[str, list[str]]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(a, b) for a in self.order for b in self.downstream[a]]


_CODES = {"missing": "missing", "extra_forbidden": "unknown_field"}


def issues_from_validation(exc: ValidationError, prefix: str = "") -> list[SpecIssue]:
    """Turn pydantic's errors into spec issues with dotted paths."""
    issues = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if p != "[key]"]
        path = ".".join([prefix, *loc] if prefix else loc) or "$"
        code = _CODES.get(err["type"], "invalid_value")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}" if loc else "unknown field"
        issues.append(SpecIssue(path, code, msg))
    return issues


def _count_edges(raw_graph: Any) -> int:
    if not isinstance(raw_graph, Mapping):
        return 0
    return sum(len(v) for v in raw_graph.values() if isinstance(v, list | tuple))


def parse_spec(raw: Any, limits: SpecLimits = LIBRARY_LIMITS) -> GraphSpec:
    """Validate the shape of a spec (dict form) and cheap size limits; raise SpecError."""
    if isinstance(raw, GraphSpec):
        return raw
    if not isinstance(raw, Mapping):
        raise SpecError(
            [SpecIssue("$", "invalid_value", f"a graph spec is an object, not {type(raw).__name__}")]
        )
    # Size limits first, so a huge spec is turned away before pydantic builds anything.
    issues = []
    nodes, graph = raw.get("nodes"), raw.get("graph")
    if limits.max_nodes is not None:
        n = max(len(nodes) if isinstance(nodes, Mapping) else 0,
                len(graph) if isinstance(graph, Mapping) else 0)
        if n > limits.max_nodes:
            issues.append(SpecIssue("nodes", "limit_exceeded",
                                    f"{n} nodes; at most {limits.max_nodes} allowed"))
    if limits.max_edges is not None:
        e = _count_edges(graph)
        if e > limits.max_edges:
            issues.append(SpecIssue("graph", "limit_exceeded",
                                    f"{e} edges; at most {limits.max_edges} allowed"))
    if issues:
        raise SpecError(issues)
    try:
        return GraphSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(issues_from_validation(exc)) from None


def _find_cycle(nodes: set[str], downstream: dict[str, list[str]]) -> list[str]:
    """One cycle among `nodes` (each has an edge to another of them), as a closed path."""
    start = min(nodes)
    seen: dict[str, int] = {}
    path: list[str] = []
    cur = start
    while cur not in seen:
        seen[cur] = len(path)
        path.append(cur)
        cur = next(d for d in downstream[cur] if d in nodes)
    return [*path[seen[cur]:], cur]


def _strip_to_cycles(nodes: set[str], downstream: dict[str, list[str]]) -> set[str]:
    """Drop, repeatedly, every node with no edge to another of `nodes`: what is left lies on
    cycles (or leads into one and has an edge back)."""
    changed = True
    while changed:
        changed = False
        for n in list(nodes):
            if not any(d in nodes for d in downstream[n]):
                nodes.discard(n)
                changed = True
    return nodes


def check_graph(spec: GraphSpec) -> tuple[Topology | None, list[SpecIssue]]:
    """Check edges, cycles and reachability; return the topology (None if unusable) and issues."""
    issues: list[SpecIssue] = []
    names = list(spec.nodes)
    known = set(names)
    downstream: dict[str, list[str]] = {n: [] for n in names}
    upstream: dict[str, list[str]] = {n: [] for n in names}
    referenced: set[str] = set()
    for src, dests in spec.graph.items():
        if src not in known:
            issues.append(SpecIssue(f"graph.{src}", "unknown_node",
                                    f"graph names node {src!r}, which is not in nodes"))
            continue
        referenced.add(src)
        for i, dst in enumerate(dests or ()):
            if dst not in known:
                issues.append(SpecIssue(f"graph.{src}.{i}", "unknown_node",
                                        f"edge {src!r} -> {dst!r}: no node {dst!r} in nodes"))
                continue
            if dst in downstream[src]:
                issues.append(SpecIssue(f"graph.{src}.{i}", "duplicate_edge",
                                        f"edge {src!r} -> {dst!r} is listed twice"))
                continue
            referenced.add(dst)
            downstream[src].append(dst)
            upstream[dst].append(src)
    for n in names:
        if n not in referenced:
            issues.append(SpecIssue(f"nodes.{n}", "unconnected_node",
                                    f"node {n!r} is neither in graph nor the target of an edge"))
    # Kahn's algorithm: iterative, so a chain thousands deep is fine.
    indeg = {n: len(upstream[n]) for n in names}
    ready = deque(n for n in names if indeg[n] == 0)
    order: list[str] = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for d in downstream[n]:
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
    inputs = [n for n in names if not upstream[n]]
    if len(order) < len(names):
        left = {n for n in names if indeg[n] > 0}
        # Nodes that are merely downstream of a cycle are not on one: strip them first.
        on_cycle = _strip_to_cycles(set(left), downstream)
        while on_cycle:
            cyc = _find_cycle(on_cycle, downstream)
            what = "self-loop" if len(cyc) == 2 else "cycle"
            issues.append(SpecIssue(f"graph.{cyc[0]}", "cycle",
                                    f"{what}: {' -> '.join(cyc)}; a pipeline must be acyclic"))
            on_cycle = _strip_to_cycles(on_cycle - set(cyc), downstream)
    if not inputs and names:
        issues.append(SpecIssue("graph", "no_input",
                                "no input node: every node has an incoming edge"))
    elif len(order) == len(names):
        pass  # acyclic: everything is reachable from some input
    else:
        reach: set[str] = set()
        stack = list(inputs)
        while stack:
            n = stack.pop()
            if n in reach:
                continue
            reach.add(n)
            stack.extend(downstream[n])
        for n in names:
            if n not in reach and indeg[n] > 0 and n in referenced:
                issues.append(SpecIssue(f"nodes.{n}", "unreachable",
                                        f"node {n!r} cannot be reached from any input node"))
    if not names:
        issues.append(SpecIssue("nodes", "invalid_value", "a pipeline needs at least one node"))
    if issues:
        return None, issues
    outputs = [n for n in order if not downstream[n]]
    return Topology(order, upstream, downstream, inputs, outputs), []
