"""The library and the service agree: one report shape, the same refusals, the same failed end.

Each test runs one graph through the library (a Plumber with the service's own registry) and
through the service (a real server, the Python client), and compares what each says.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from serverutil import serve

from client import PipelineFailedError, PipelinesClient, SpecValidationError
from pipelines import LogSkippedItems, NodeFailed, Plumber, RunStatus, SpecError
from pipelines.processor import Processor
from server.coroutines import build_registry

REGISTRY = build_registry(test_coroutines=True)


def chain(*steps: dict[str, Any], stop: int = 5) -> dict[str, Any]:
    nodes: dict[str, Any] = {"src": {"coro": "Source.range", "args": {"stop": stop}}}
    graph: dict[str, Any] = {}
    prev = "src"
    for i, step in enumerate(steps):
        name = f"n{i}"
        nodes[name] = step
        graph[prev] = [name]
        prev = name
    graph[prev] = None
    return {"nodes": nodes, "graph": graph}


async def test_run_report_and_done_report_have_one_shape() -> None:
    spec = chain({"coro": "Number.square"}, {"coro": "Test.fail_when", "args": {"value": 4}})
    report = await Plumber(spec, registry=REGISTRY, collect=True, on_item_error=lambda e: None).run()
    library = report.to_dict()
    async with serve() as url, PipelinesClient(url) as client:
        run = await client.submit(spec)
        [item.value async for item in run]
        done = await run.wait()
    # The same fields under the same names (the service adds pipeline_id and skipped).
    assert set(library) == {"status", "elapsed", "results", "nodes", "error"}
    assert (done.status, done.results, done.error) == (library["status"], library["results"], None)
    assert library["status"] == "completed" and library["results"] == 4
    assert done.skipped == 0 and done.pipeline_id
    for name, node in library["nodes"].items():
        node.pop("first_errors")
        assert done.nodes[name] == node, name
    # A source's `in` is what it produced, in both.
    assert library["nodes"]["src"]["in"] == library["nodes"]["src"]["out"] == 5
    assert done.nodes["src"]["in"] == 5
    assert done.nodes["n1"]["errors"] == 1


async def test_a_source_in_matches_out_in_live_metrics_too() -> None:
    plumber = Plumber(chain({"coro": "Number.square"}, stop=3), registry=REGISTRY, collect=True)
    await plumber.run()
    snap = plumber.metrics()["nodes"]["src"]
    assert snap["in"] == snap["out"] == 3


async def test_a_processor_as_the_only_input_node_is_refused_by_both() -> None:
    async def square(self: Processor, q_elt: tuple[int]) -> int:
        return q_elt[0] ** 2

    with pytest.raises(SpecError) as library:
        Plumber({"nodes": {"sq": {"coro": square}, "out": {"coro": square}},
                 "graph": {"sq": ["out"], "out": None}})
    spec = {"nodes": {"sq": {"coro": "Number.square"}, "out": {"coro": "Flow.identity"}},
            "graph": {"sq": ["out"], "out": None}}
    with pytest.raises(SpecError) as library_registry:
        Plumber(spec, registry=REGISTRY)
    async with serve() as url, PipelinesClient(url) as client:
        with pytest.raises(SpecValidationError) as service:
            await client.validate(spec)
    codes = [{issue.code for issue in library.value.issues},
             {issue.code for issue in library_registry.value.issues},
             {issue["code"] for issue in service.value.issues}]
    assert codes == [{"kind_mismatch"}] * 3, codes


async def test_a_failed_run_raises_after_its_last_result_in_both() -> None:
    spec = chain({"coro": "Test.fail_at", "args": {"k": 3},
                  "properties": {"on_error": "fail", "concurrency": 1}}, stop=10)
    plumber = Plumber(spec, registry=build_registry(test_coroutines=True), collect=True)
    got: list[Any] = []
    with pytest.raises(NodeFailed) as library:
        async with asyncio.timeout(30):
            async for r in plumber.results():
                got.append(r.value)
    assert got == [0, 1, 2]
    assert (await plumber.wait()).status is RunStatus.FAILED
    async with serve() as url, PipelinesClient(url) as client:
        run = await client.submit(spec)
        seen: list[Any] = []
        with pytest.raises(PipelineFailedError) as service:
            async with asyncio.timeout(30):
                async for item in run:
                    seen.append(item.value)
        done = await run.wait()
    assert seen == [0, 1, 2] and done.status == "failed"
    assert service.value.error["code"] == library.value.code == "node_failed"


async def test_skipped_items_are_logged_rate_limited_by_default(caplog: pytest.LogCaptureFixture) -> None:
    spec = chain({"coro": "Test.fail_when", "args": {"value": 2}}, stop=5)
    caplog.set_level(logging.WARNING, logger="pipelines")
    await Plumber(spec, registry=REGISTRY).run()
    lines = [r for r in caplog.records if r.name == "pipelines.report"]
    assert len(lines) == 1 and "node 'n0' skipped item (2,)" in lines[0].getMessage()
    # Twenty failures in a burst: one line, and the next line says how many were not logged.
    caplog.clear()
    log = LogSkippedItems(interval=3600)

    async def always(self: Processor, q_elt: tuple[int]) -> int:
        raise ValueError("no")

    async def numbers(self: Processor, output_q: Any) -> None:
        for i in range(20):
            await output_q.put(i)

    await Plumber({"nodes": {"s": {"coro": numbers}, "a": {"coro": always}},
                   "graph": {"s": ["a"], "a": None}}, on_item_error=log).run()
    assert len([r for r in caplog.records if r.name == "pipelines.report"]) == 1
    log.interval = 0
    await Plumber({"nodes": {"s": {"coro": numbers}, "a": {"coro": always}},
                   "graph": {"s": ["a"], "a": None}}, on_item_error=log).run()
    assert len([r for r in caplog.records if r.name == "pipelines.report"]) == 21
    # A callback of one's own replaces the log.
    caplog.clear()
    seen: list[str] = []
    await Plumber(spec, registry=REGISTRY, on_item_error=lambda e: seen.append(e.item)).run()
    assert seen == ["(2,)"] and not [r for r in caplog.records if r.name == "pipelines.report"]

