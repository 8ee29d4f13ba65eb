"""Property tests of the engine: random graph specs against a plain-Python reference model.

Valid specs (DAGs of 2-10 nodes, random fan-out and fan-in, zip and merge nodes, random
concurrency / ordered / queue_size) must run to completion with exactly the outputs the model
predicts; invalid ones (cycles, unknown nodes, bad args, unknown coroutines, no input node) must be
rejected with a `SpecError` whose issues carry a path and a code. Every example runs in a fresh
event loop under a timeout, and must leave no task behind.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import Plumber, RunStatus, SpecError

__all__: list[str] = []

EXAMPLE_TIMEOUT = 10.0  # seconds per example; a hang fails the example instead of the suite

# --- the coroutines the specs may name ------------------------------------------------------


async def _shake(value: int) -> None:
    # Yield a value-dependent number of times so that concurrent items finish out of order:
    # this is what makes `ordered` observable.
    for _ in range(value % 4):
        await asyncio.sleep(0)


async def src_range(
    self: Any, output_q: asyncio.Queue[Any], *, start: int = 0, stop: int = 10
) -> None:
    """Source: put start, start+1, ..., stop-1."""
    for i in range(start, stop):
        await output_q.put(i)


async def proc_add(self: Any, q_elt: tuple[Any, ...], *, n: int = 1) -> int:
    """Processor: the sum of the item's parts, plus n."""
    total = sum(q_elt)
    await _shake(total)
    return total + n


async def proc_mul(self: Any, q_elt: tuple[Any, ...], *, n: int = 2) -> int:
    """Processor: the sum of the item's parts, times n."""
    total = sum(q_elt)
    await _shake(total)
    return total * n


async def proc_sum(self: Any, q_elt: tuple[Any, ...]) -> int:
    """Processor: the sum of the item's parts (a zip node's natural join)."""
    total = sum(q_elt)
    await _shake(total)
    return total


CORO_MAP: dict[str, Callable[..., Any]] = {
    "T.range": src_range,
    "T.add": proc_add,
    "T.mul": proc_mul,
    "T.sum": proc_sum,
}


def _resolve(name: str) -> Callable[..., Any]:
    return CORO_MAP[name]


# --- the reference model --------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """What a node emits: always how many items; the exact sequence or the multiset when known."""

    count: int
    seq: tuple[int, ...] | None = None  # exact order is guaranteed
    bag: Counter[int] | None = None  # the values are known, their order is not


@dataclass
class NodeDef:
    name: str
    coro: str
    args: dict[str, Any]
    props: dict[str, Any]
    inputs: list[str]  # upstream nodes

    @property
    def is_source(self) -> bool:
        return self.coro == "T.range"


def _apply(node: NodeDef, parts: tuple[int, ...]) -> int:
    total = sum(parts)
    if node.coro == "T.add":
        return total + int(node.args.get("n", 1))
    if node.coro == "T.mul":
        return total * int(node.args.get("n", 2))
    return total


def predict(nodes: list[NodeDef]) -> dict[str, Prediction]:
    """Predict every node's output; `nodes` is in topological order."""
    out: dict[str, Prediction] = {}
    for node in nodes:
        if node.is_source:
            seq = tuple(range(node.args.get("start", 0), node.args.get("stop", 10)))
            out[node.name] = Prediction(len(seq), seq=seq)
            continue
        ups = [out[u] for u in node.inputs]
        keeps_order = node.props.get("ordered", True) or node.props.get("concurrency", 64) == 1
        aggregate = node.props.get("aggregate_inputs", True)
        if len(ups) == 1 or aggregate:
            # One item from each input per call (zip); with one input that is a plain map.
            count = min(p.count for p in ups)
            if all(p.seq is not None for p in ups):
                values = tuple(
                    _apply(node, parts)
                    for parts in zip(*(p.seq for p in ups if p.seq is not None), strict=False)
                )
                out[node.name] = (
                    Prediction(count, seq=values)
                    if keeps_order
                    else Prediction(count, bag=Counter(values))
                )
            elif len(ups) == 1 and ups[0].bag is not None:
                bag: Counter[int] = Counter()
                for v, k in ups[0].bag.items():
                    bag[_apply(node, (v,))] += k
                out[node.name] = Prediction(count, bag=bag)
            else:
                # Pairing depends on arrival order: only the count is determined.
                out[node.name] = Prediction(count)
        else:
            # Merge: each upstream item alone; arrival interleaving is not determined.
            count = sum(p.count for p in ups)
            if all(p.seq is not None or p.bag is not None for p in ups):
                bag = Counter()
                for p in ups:
                    for v in p.seq if p.seq is not None else p.bag.elements():  # type: ignore[union-attr]
                        bag[_apply(node, (v,))] += 1
                out[node.name] = Prediction(count, bag=bag)
            else:
                out[node.name] = Prediction(count)
    return out


def _is_zip(node: NodeDef) -> bool:
    return len(node.inputs) > 1 and bool(node.props.get("aggregate_inputs", True))


def _is_merge(node: NodeDef) -> bool:
    return len(node.inputs) > 1 and not node.props.get("aggregate_inputs", True)


def unbalanced(nodes: list[NodeDef]) -> bool:
    """True when a merge node feeds (directly or not) a zip node.

    Such a zip pairs a stream that carries extra items (the merge's other inputs) with one that
    does not; with bounded queues the streams cannot drift apart by more than the queues hold,
    so a naive engine stalls for good (see test_unbalanced_zip_does_not_hang); the generator
    makes such graphs on purpose.
    """
    tainted: set[str] = set()
    for n in nodes:  # topological order
        if _is_merge(n) or any(u in tainted for u in n.inputs):
            tainted.add(n.name)
        if _is_zip(n) and any(u in tainted for u in n.inputs):
            return True
    return False


def needed(nodes: list[NodeDef], pred: dict[str, Prediction]) -> dict[str, int]:
    """The fewest items each node must emit for the outputs to be complete.

    A node whose consumers all ended early (a zip ends with its shortest input) may be stopped
    before it emitted everything, so only outputs are exact: every other node emits between
    this and its predicted count.
    """
    need = {n.name: 0 for n in nodes}
    consumers: dict[str, list[NodeDef]] = {n.name: [] for n in nodes}
    for n in nodes:
        for u in n.inputs:
            consumers[u].append(n)
    for n in reversed(nodes):  # consumers before producers
        if not consumers[n.name]:
            need[n.name] = pred[n.name].count
            continue
        for v in consumers[n.name]:
            if _is_merge(v):
                others = sum(pred[u].count for u in v.inputs if u != n.name)
                need[n.name] = max(need[n.name], need[v.name] - others)
            else:
                need[n.name] = max(need[n.name], need[v.name])
    return need


def to_spec(nodes: list[NodeDef], order: list[int]) -> dict[str, Any]:
    """The graph spec dict, with node and graph keys in the given (shuffled) order."""
    downstream: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for u in n.inputs:
            downstream[u].append(n.name)
    spec_nodes: dict[str, Any] = {}
    graph: dict[str, Any] = {}
    for i in order:
        n = nodes[i]
        entry: dict[str, Any] = {"coro": n.coro}
        if n.args:
            entry["args"] = dict(n.args)
        if n.props:
            entry["properties"] = dict(n.props)
        spec_nodes[n.name] = entry
        graph[n.name] = tuple(downstream[n.name]) or None
    return {"nodes": spec_nodes, "graph": graph}


# --- generators -----------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "inp", "out", "x1", "node-2", "Zed", "m", "q"])


@st.composite
def properties(draw: st.DrawFn, *, source: bool) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if not source and draw(st.booleans()):
        props["aggregate_inputs"] = draw(st.booleans())
    if draw(st.booleans()):
        props["concurrency"] = draw(st.integers(1, 8))
    if draw(st.booleans()):
        props["ordered"] = draw(st.booleans())
    if draw(st.booleans()):
        props["queue_size"] = draw(st.integers(1, 8))
    return props


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[NodeDef], list[int]]:
    """A valid DAG in topological order, plus a shuffled key order for the spec."""
    n = draw(st.integers(2, 10))
    names = draw(st.lists(NAMES, min_size=n, max_size=n, unique=True)) if n <= 10 else []
    nodes: list[NodeDef] = []
    for j in range(n):
        is_source = j == 0 or (j < n - 1 and draw(st.integers(0, 3)) == 0)
        if is_source:
            start = draw(st.integers(-3, 5))
            stop = start + draw(st.integers(0, 12))
            nodes.append(NodeDef(names[j], "T.range", {"start": start, "stop": stop},
                                 draw(properties(source=True)), []))
            continue
        fan_in = draw(st.integers(1, min(3, j)))
        inputs = draw(st.lists(st.integers(0, j - 1), min_size=fan_in, max_size=fan_in,
                               unique=True))
        coro = draw(st.sampled_from(["T.add", "T.mul", "T.sum"]))
        args: dict[str, Any] = {}
        if coro != "T.sum" and draw(st.booleans()):
            args["n"] = draw(st.integers(-3, 3))
        nodes.append(NodeDef(names[j], coro, args, draw(properties(source=False)),
                             [names[i] for i in inputs]))
    # Every source must feed something: wire a dangling one into a later processor.
    consumed = {u for node in nodes for u in node.inputs}
    for j, node in enumerate(nodes):
        if node.is_source and node.name not in consumed:
            later = [k for k in range(j + 1, n) if not nodes[k].is_source]
            nodes[draw(st.sampled_from(later))].inputs.append(node.name)
    order = draw(st.permutations(list(range(n))))
    return nodes, list(order)


# --- running --------------------------------------------------------------------------------


async def _run_collect(spec: dict[str, Any], shared_task: bool = True
                       ) -> tuple[dict[str, list[int]], list[int], Any]:
    plumber = Plumber(spec, coro_map=_resolve, collect=True, shared_task=shared_task)
    got: dict[str, list[int]] = {}
    seqs: list[int] = []
    async with asyncio.timeout(EXAMPLE_TIMEOUT):
        plumber.start()
        async for batch in plumber.result_batches():
            for r in batch:
                got.setdefault(r.node, []).append(r.value)
                seqs.append(r.seq)
        report = await plumber.wait()
    return got, seqs, report


def _stalled(report: Any, nodes: list[NodeDef]) -> bool:
    """Completed (False), or (True) failed with `stalled`, which only an unbalanced graph may."""
    if report.status is RunStatus.COMPLETED:
        return False
    assert report.status is RunStatus.FAILED, report.to_dict()
    assert report.error is not None and report.error.code == "stalled", report.to_dict()
    assert unbalanced(nodes), f"a balanced graph stalled: {report.to_dict()}"
    zips = [n.name for n in nodes if _is_zip(n)]
    assert any(f"'{z}'" in report.error.message for z in zips), report.error.message
    return True


def _check_no_tasks_left() -> None:
    me = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    assert not left, f"tasks left behind: {left}"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag=dags(), shared=st.booleans())
def test_valid_specs_produce_the_reference_outputs(dag: tuple[list[NodeDef], list[int]],
                                                   shared: bool) -> None:
    """Either way of running the local nodes (one shared task, or a task each)."""
    nodes, order = dag
    spec = to_spec(nodes, order)
    expected = predict(nodes)
    outputs = {n.name for n in nodes} - {u for n in nodes for u in n.inputs}

    async def main() -> None:
        got, seqs, report = await _run_collect(spec, shared)
        stalled = _stalled(report, nodes)
        assert seqs == list(range(len(seqs))), f"seq not 0..n-1 in order: {seqs}"
        assert set(got) <= outputs, f"results from non-output nodes: {set(got) - outputs}"
        for name in sorted(outputs):
            pred, values = expected[name], got.get(name, [])
            if stalled:  # what did arrive is a part of what was predicted
                assert len(values) <= pred.count, (name, values, pred)
                if pred.seq is not None:
                    assert tuple(values) == pred.seq[: len(values)], (name, values, pred)
                elif pred.bag is not None:
                    assert not Counter(values) - pred.bag, (name, values, pred)
                continue
            assert len(values) == pred.count, (name, values, pred)
            if pred.seq is not None:
                assert tuple(values) == pred.seq, (name, values, pred)
            elif pred.bag is not None:
                assert Counter(values) == pred.bag, (name, values, pred)
        await asyncio.sleep(0)
        _check_no_tasks_left()

    asyncio.run(main())


@settings(max_examples=300, deadline=None)
@given(dag=dags(), shared=st.booleans())
def test_run_reports_the_reference_counts(dag: tuple[list[NodeDef], list[int]],
                                          shared: bool) -> None:
    """`await Plumber(...).run()`, the one-call form: every node's counts match the model
    (local nodes in one shared task, or in a task each)."""
    nodes, order = dag
    spec = to_spec(nodes, order)
    expected = predict(nodes)
    outputs = {n.name for n in nodes} - {u for n in nodes for u in n.inputs}

    async def main() -> None:
        async with asyncio.timeout(EXAMPLE_TIMEOUT):
            report = await Plumber(spec, coro_map=_resolve, shared_task=shared).run()
        if _stalled(report, nodes):
            assert report.results <= sum(expected[o].count for o in outputs), report
            return
        assert report.results == sum(expected[o].count for o in outputs), report
        least = needed(nodes, expected)
        for node in nodes:
            got = report.nodes[node.name]
            assert least[node.name] <= got.items_out <= expected[node.name].count, (
                node.name, least[node.name], got)
            if node.name in outputs:
                assert got.items_out == expected[node.name].count, (node.name, got)
            assert got.errors == 0, (node.name, got)
            zips = not node.is_source and len(node.inputs) > 1 and node.props.get(
                "aggregate_inputs", True)
            if zips:
                # Items that reached the zip and found no partner; upstream items never made
                # (a node stopped once its consumers ended) are not counted. A zip stopped early
                # itself leaves the items it held unpaired.
                counts = [expected[u].count for u in node.inputs]
                bound = (sum(c - min(counts) for c in counts)
                         if got.items_out == expected[node.name].count else sum(counts))
                assert 0 <= got.unpaired <= bound, (node.name, bound, got)
        await asyncio.sleep(0)
        _check_no_tasks_left()

    asyncio.run(main())


# --- invalid specs --------------------------------------------------------------------------


@st.composite
def invalid_specs(draw: st.DrawFn) -> tuple[dict[str, Any], set[str], str | None]:
    """A spec broken in one way, the issue codes any of which may report it, and a name that
    the matching issue's message must mention (the node on the cycle, the unknown name...)."""
    nodes, order = draw(dags())
    spec = to_spec(nodes, order)
    by_name = {n.name: n for n in nodes}
    procs = [n for n in nodes if not n.is_source]
    kind = draw(st.sampled_from(
        ["cycle", "self_loop", "unknown_edge", "unknown_graph_key", "bad_arg_type",
         "unknown_arg", "unknown_coro", "no_input"]))
    if kind == "cycle":
        # Close a loop: from a processor back to one of its processor ancestors.
        target = draw(st.sampled_from(procs))
        ancestors: list[str] = []
        stack = list(target.inputs)
        while stack:
            u = stack.pop()
            if u not in ancestors:
                ancestors.append(u)
                stack.extend(by_name[u].inputs)
        back = [a for a in ancestors if not by_name[a].is_source] or [target.name]
        to = draw(st.sampled_from(sorted(back)))
        spec["graph"][target.name] = tuple(spec["graph"][target.name] or ()) + (to,)
        return spec, {"cycle"}, target.name
    if kind == "self_loop":
        target = draw(st.sampled_from(procs))
        spec["graph"][target.name] = tuple(spec["graph"][target.name] or ()) + (target.name,)
        return spec, {"cycle", "self_loop"}, target.name
    if kind == "unknown_edge":
        frm = draw(st.sampled_from(sorted(spec["graph"])))
        spec["graph"][frm] = tuple(spec["graph"][frm] or ()) + ("ghost",)
        return spec, {"unknown_node"}, "ghost"
    if kind == "unknown_graph_key":
        spec["graph"]["ghost"] = (nodes[-1].name,)
        return spec, {"unknown_node"}, "ghost"
    if kind == "bad_arg_type":
        src = draw(st.sampled_from([n for n in nodes if n.is_source]))
        spec["nodes"][src.name]["args"]["stop"] = draw(st.sampled_from(["ten", [1], {"a": 1}]))
        return spec, {"invalid_args", "invalid_value"}, None
    if kind == "unknown_arg":
        target = draw(st.sampled_from(nodes))
        spec["nodes"][target.name].setdefault("args", {})["bogus"] = 1
        return spec, {"invalid_args", "unknown_field"}, "bogus"
    if kind == "unknown_coro":
        target = draw(st.sampled_from(nodes))
        name = draw(st.sampled_from(["T.nope", "os.system", "__builtins__.eval", ""]))
        spec["nodes"][target.name]["coro"] = name
        if not name:
            return spec, {"invalid_value", "unknown_coroutine"}, None
        return spec, {"unknown_coroutine"}, name
    # no input node: every node has an incoming edge (a ring of processors).
    ring = [n.name for n in procs] or [nodes[-1].name]
    k = len(ring)
    spec = {
        "nodes": {name: {"coro": "T.add"} for name in ring},
        "graph": {ring[i]: (ring[(i + 1) % k],) for i in range(k)},
    }
    return spec, {"no_input"}, None


@settings(max_examples=300, deadline=None)
@given(case=invalid_specs())
def test_invalid_specs_are_rejected_with_located_issues(
    case: tuple[dict[str, Any], set[str], str | None],
) -> None:
    spec, codes, mention = case

    async def main() -> None:
        try:
            Plumber(spec, coro_map=_resolve, collect=True)
        except SpecError as err:
            assert err.issues, "SpecError without issues"
            for issue in err.issues:
                assert isinstance(issue.path, str) and issue.code and issue.message, issue
            found = {i.code for i in err.issues}
            assert found & codes, f"expected one of {codes}, got {err.to_dict()}"
            if mention is not None:
                word = re.compile(rf"(^|[\s'\"]){re.escape(mention)}($|[\s'\",;:])")
                assert any(word.search(i.message) for i in err.issues if i.code in codes), (
                    f"no {codes} issue names {mention!r}: {err.to_dict()}"
                )
            d = err.to_dict()
            assert d["code"] == "invalid_spec" and d["errors"], d
        else:
            raise AssertionError(f"accepted an invalid spec ({codes}): {spec}")
        _check_no_tasks_left()

    asyncio.run(main())


# --- shapes found by the generator, kept as plain regressions -------------------------------


async def _endless(self: Any, output_q: Any) -> None:
    """A source that never ends by itself (a ticker, a socket); bounded here so that an engine
    that never stops it fails this test instead of blocking the loop for ever."""
    for i in range(1_000_000):
        await output_q.put(i)
    raise RuntimeError("still producing a million items after every consumer ended")


def test_zip_end_stops_an_endless_source() -> None:
    """A zip ends with its shortest input; an endless source feeding only it must then stop
    (and must not spin the loop: putting into an abandoned queue has to end the source)."""
    spec = {
        "nodes": {"tick": {"coro": _endless}, "few": {"coro": src_range, "args": {"stop": 3}},
                  "z": {"coro": proc_sum}},
        "graph": {"tick": ["z"], "few": ["z"], "z": None},
    }

    async def main() -> None:
        plumber = Plumber(spec, coro_map=lambda c: c, collect=True)
        values: list[int] = []
        async with asyncio.timeout(EXAMPLE_TIMEOUT):
            async for batch in plumber.result_batches():
                values.extend(r.value for r in batch)
            report = await plumber.wait()
        assert report.status is RunStatus.COMPLETED, report.to_dict()
        assert values == [0, 2, 4]
        tick = report.nodes["tick"]
        assert tick.errors == 0 and tick.items_out < 10_000, (
            f"the endless source ran on after the zip ended: {tick}")
        _check_no_tasks_left()

    asyncio.run(main())


def test_unbalanced_zip_does_not_hang() -> None:
    """a -> c (merge with b) -> inp (zip with a): c carries b's items too, so the two inputs of
    inp drift apart by more than the queue sizes (1) hold. With bounded queues and a node that
    broadcasts to its outlets one after another, this stalled for good; it must end."""
    spec = {
        "nodes": {
            "a": {"coro": "T.range", "args": {"start": 0, "stop": 5}},
            "b": {"coro": "T.range", "args": {"start": 0, "stop": 4}},
            "c": {"coro": "T.sum", "properties": {"aggregate_inputs": False, "concurrency": 1,
                                                  "ordered": False, "queue_size": 1}},
            "inp": {"coro": "T.add", "properties": {"queue_size": 1}},
            "out": {"coro": "T.sum"},
        },
        "graph": {"a": ["c", "inp", "out"], "b": ["c"], "c": ["inp"], "inp": None, "out": None},
    }

    async def main() -> None:
        plumber = Plumber(spec, coro_map=_resolve, collect=True)
        try:
            async with asyncio.timeout(5):
                async for _ in plumber.result_batches():
                    pass
                report = await plumber.wait()
        finally:
            await plumber.cancel()
        if report.status is not RunStatus.COMPLETED:
            assert report.error is not None and report.error.code == "stalled", report.to_dict()
            assert "'inp'" in report.error.message, report.error.message
        _check_no_tasks_left()

    asyncio.run(main())
