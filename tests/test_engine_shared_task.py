"""Local processor nodes share one task (group.py): the same results, counts, statuses, errors,
backpressure and stall detection as with a task per node (`shared_task=False`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipelines import DROP, Plumber, RunStatus
from pipelines.processor import Processor

BOTH = pytest.mark.parametrize("shared", [True, False], ids=["shared", "task-each"])


async def src_range(self: Processor, output_q: Any, n: int = 10) -> None:
    for i in range(n):
        await output_q.put(i)


async def add1(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    return q_elt[0] + 1


async def odd_only(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    return q_elt[0] if q_elt[0] % 2 else DROP


async def sometimes_waits(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    if q_elt[0] % 3 == 0:
        await asyncio.sleep(0.001 * (q_elt[0] % 5))
    return q_elt[0] * 10


async def fails_on_7(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    if q_elt[0] == 7:
        raise ValueError("seven")
    return q_elt[0]


async def pair(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    return list(q_elt)


def ident(x: Any) -> Any:
    return x


def spec_of(nodes: dict[str, Any], graph: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": nodes, "graph": graph}


GRAPHS = {
    # a chain with a filter and a node whose items sometimes suspend (kept in order)
    "chain": spec_of(
        {"s": {"coro": src_range, "args": {"n": 500}}, "f": {"coro": odd_only},
         "w": {"coro": sometimes_waits, "properties": {"concurrency": 8}},
         "o": {"coro": add1, "properties": {"queue_size": 2}}},
        {"s": ["f"], "f": ["w"], "w": ["o"], "o": None}),
    # a diamond into a merge node, an item error skipped on one branch, unordered items
    "diamond": spec_of(
        {"s": {"coro": src_range, "args": {"n": 300}}, "a": {"coro": add1},
         "b": {"coro": fails_on_7},
         "c": {"coro": sometimes_waits, "properties": {"concurrency": 4, "ordered": False}},
         "m": {"coro": add1, "properties": {"aggregate_inputs": False, "queue_size": 3}}},
        {"s": ["a"], "a": ["b", "c"], "b": ["m"], "c": ["m"], "m": None}),
    # a zip of a long and a short input: it ends with the shorter and detaches the longer
    "zip": spec_of(
        {"long": {"coro": src_range, "args": {"n": 400}},
         "short": {"coro": src_range, "args": {"n": 50}},
         "l": {"coro": add1}, "z": {"coro": pair, "properties": {"queue_size": 8}}},
        {"long": ["l"], "l": ["z"], "short": ["z"], "z": None}),
}


async def run_collect(spec: dict[str, Any], shared: bool, **kw: Any) -> tuple[Any, list[Any]]:
    p = Plumber(spec, coro_map=ident, collect=True, shared_task=shared, **kw)
    got = []
    async with asyncio.timeout(20):
        async for batch in p.result_batches():
            got.extend((r.node, r.value) for r in batch)
        return await p.wait(), got


def counts(report: Any) -> dict[str, Any]:
    return {name: (n.items_in, n.items_out, n.errors, n.dropped, n.unpaired, n.status)
            for name, n in report.nodes.items()}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
async def test_one_task_or_a_task_each_give_the_same_run(graph: str) -> None:
    shared_report, shared_got = await run_collect(GRAPHS[graph], True)
    each_report, each_got = await run_collect(GRAPHS[graph], False)
    assert shared_report.status is RunStatus.COMPLETED, shared_report.error
    assert each_report.status is RunStatus.COMPLETED, each_report.error
    ordered = graph != "diamond"  # (unordered items, and a merge of two branches)
    if ordered:
        assert shared_got == each_got
    else:
        assert sorted(shared_got) == sorted(each_got)
    assert shared_got, "the run produced results"
    if graph == "zip":
        # detached: how much of the long input was taken and dropped before the zip ended
        # depends on timing; the pairs and the zip's and the short source's counts do not
        assert shared_got == [("z", [i + 1, i]) for i in range(50)]
        assert counts(shared_report)["short"] == counts(each_report)["short"]
        for report in (shared_report, each_report):
            z = report.nodes["z"]
            assert (z.items_in, z.items_out, z.errors, z.status) == (50, 50, 0, "done")
        assert shared_report.nodes["l"].status == each_report.nodes["l"].status == "done"
    else:
        assert counts(shared_report) == counts(each_report)


async def test_the_local_nodes_run_in_one_task_and_sources_in_their_own() -> None:
    names: list[str] = []

    async def source(self: Processor, output_q: Any) -> None:
        for i in range(100):
            await output_q.put(i)
        names.extend(t.get_name() for t in asyncio.all_tasks())

    spec = spec_of({"s": {"coro": source}, "a": {"coro": add1}, "b": {"coro": add1},
                    "o": {"coro": add1}}, {"s": ["a"], "a": ["b"], "b": ["o"], "o": None})
    report = await Plumber(spec, coro_map=ident, name="g").run()
    assert report.status is RunStatus.COMPLETED and report.results == 100
    ours = sorted(n for n in names if n.startswith("pipelines:g:"))
    assert ours == ["pipelines:g:a+b+o", "pipelines:g:s"]
    names.clear()
    await Plumber(spec, coro_map=ident, name="g", shared_task=False).run()
    ours = sorted(n for n in names if n.startswith("pipelines:g:"))
    assert ours == ["pipelines:g:a", "pipelines:g:b", "pipelines:g:o", "pipelines:g:s"]
    # each node keeps its own metrics in the shared task
    assert [report.nodes[n].items_out for n in "sabo"] == [100, 100, 100, 100]
    assert all(report.nodes[n].status == "done" for n in "sabo")


@BOTH
async def test_a_node_that_fails_the_pipeline_is_named_and_marked(shared: bool) -> None:
    spec = spec_of({"s": {"coro": src_range, "args": {"n": 100}}, "a": {"coro": add1},
                    "b": {"coro": fails_on_7, "properties": {"on_error": "fail"}},
                    "o": {"coro": add1}},
                   {"s": ["a"], "a": ["b"], "b": ["o"], "o": None})
    report, got = await run_collect(spec, shared)
    assert report.status is RunStatus.FAILED
    assert report.error is not None and report.error.node == "b"
    assert report.nodes["b"].status == "failed"
    assert report.nodes["o"].status in ("cancelled", "done")
    # the results finished before the failing item still left, in order
    assert [v for _, v in got] == [i + 2 for i in range(6)]


@BOTH
async def test_a_slow_results_reader_is_backpressure_not_a_stall(shared: bool) -> None:
    """An output node waiting for the reader waits on no node: the stall watchdog (every 0.2
    s) must not fail the run while the reader pauses longer than that."""
    spec = spec_of({"s": {"coro": src_range, "args": {"n": 40}}, "a": {"coro": add1},
                    "o": {"coro": add1}}, {"s": ["a"], "a": ["o"], "o": None})
    p = Plumber(spec, coro_map=ident, collect=True, result_buffer=4, shared_task=shared)
    got: list[int] = []
    async with asyncio.timeout(20):
        async for batch in p.result_batches(max_batch=4):
            got.extend(r.value for r in batch)
            if len(got) <= 8:
                await asyncio.sleep(0.5)
        report = await p.wait()
    assert report.status is RunStatus.COMPLETED, report.error
    assert got == [i + 2 for i in range(40)]


@BOTH
async def test_a_stuck_zip_in_the_group_is_still_a_named_stall(shared: bool) -> None:
    async def evens(self: Processor, q_elt: tuple[int]) -> Any:
        return q_elt[0] if q_elt[0] % 2 == 0 else DROP

    spec = spec_of({"s": {"coro": src_range, "args": {"n": 2000}}, "f": {"coro": evens},
                    "g": {"coro": add1}, "z": {"coro": pair, "properties": {"queue_size": 4}}},
                   {"s": ["g", "f"], "g": ["z"], "f": ["z"], "z": None})
    before = asyncio.all_tasks()
    report = await asyncio.wait_for(Plumber(spec, coro_map=ident, shared_task=shared).run(), 5)
    assert report.status is RunStatus.FAILED
    assert report.error is not None and report.error.code == "stalled"
    assert "'g' waits for room on g -> z (4/4)" in report.error.message
    assert asyncio.all_tasks() == before
