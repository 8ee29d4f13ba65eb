"""An item coroutine that captures its task in its first step (asyncio.timeout, TaskGroup,
current_task) gets the task that runs it to its end, never the node's own task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipelines import Plumber, RunStatus
from pipelines.processor import Processor


def ident(x: Any) -> Any:
    return x


async def src_range(self: Processor, output_q: asyncio.Queue[Any], n: int = 10) -> None:
    for i in range(n):
        await output_q.put(i)


async def run_graph(coro: Any, n: int, props: dict[str, Any] | None = None) -> tuple[list[Any], Any]:
    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": n}},
                      "b": {"coro": coro, "properties": props or {}}},
            "graph": {"a": ["b"]}}
    p = Plumber(spec, coro_map=ident, collect=True, on_item_error=lambda err: None)
    got = [r.value async for r in p.results()]
    return got, await p.wait()


PROPS = [{}, {"concurrency": 1}, {"ordered": False}, {"timeout": 30},
         {"on_error": "retry", "retries": 1, "backoff": 0.01}]


@pytest.mark.parametrize("props", PROPS)
async def test_asyncio_timeout_entered_before_the_first_await_fails_only_its_item(
        props: dict[str, Any]) -> None:
    async def slow_on_odd(self: Processor, q_elt: tuple[int]) -> int:
        async with asyncio.timeout(0.05):
            if q_elt[0] % 2:
                await asyncio.sleep(60)
            else:
                await asyncio.sleep(0)
        return q_elt[0]

    got, report = await asyncio.wait_for(run_graph(slow_on_odd, 6, props), 30)
    assert sorted(got) == [0, 2, 4]
    node = report.nodes["b"]
    assert report.status is RunStatus.COMPLETED
    assert node.status == "done"
    assert node.errors == 3
    assert {e.error_type for e in node.first_errors} == {"TimeoutError"}


async def test_an_item_sees_the_same_task_from_its_first_step_to_its_last() -> None:

    async def same_task(self: Processor, q_elt: tuple[int]) -> bool:
        first = asyncio.current_task()
        if q_elt[0] % 3 == 0:
            await asyncio.sleep(0.001)
        return first is asyncio.current_task()

    got, report = await asyncio.wait_for(run_graph(same_task, 30), 30)
    assert got == [True] * 30 and report.status is RunStatus.COMPLETED


async def test_a_task_group_opened_by_an_item_reports_its_error_as_an_item_error() -> None:
    async def boom() -> None:
        await asyncio.sleep(0)
        raise ValueError("child failed")

    async def with_group(self: Processor, q_elt: tuple[int]) -> int:
        async with asyncio.TaskGroup() as tg:
            if q_elt[0] == 1:
                tg.create_task(boom())
            tg.create_task(asyncio.sleep(0.01 if q_elt[0] == 1 else 0))
        return q_elt[0]

    got, report = await asyncio.wait_for(run_graph(with_group, 4), 30)
    assert got == [0, 2, 3]
    assert report.status is RunStatus.COMPLETED
    assert report.nodes["b"].status == "done" and report.nodes["b"].errors == 1


@pytest.mark.parametrize("ordered", [True, False])
async def test_items_the_window_cannot_start_go_back_in_order_zip_and_merge(ordered: bool) -> None:
    """A node takes a batch eagerly; when an item suspends and the window (concurrency 1) is
    full, the rest go back to the front of its inlet: nothing lost, nothing reordered, pairs of
    a zip stay together."""
    running = {"z": 0, "m": 0}
    most = {"z": 0, "m": 0}

    async def sometimes_waits(self: Processor, q_elt: tuple[Any, ...]) -> Any:
        running[self.name] += 1
        most[self.name] = max(most[self.name], running[self.name])
        if sum(q_elt) % 5 == 0:
            await asyncio.sleep(0.001)
        running[self.name] -= 1
        return q_elt

    props = {"concurrency": 1, "ordered": ordered}
    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 300}},
                      "b": {"coro": src_range, "args": {"n": 300}},
                      "z": {"coro": sometimes_waits, "properties": props},
                      "m": {"coro": sometimes_waits,
                            "properties": {**props, "aggregate_inputs": False}}},
            "graph": {"a": ["z", "m"], "b": ["z", "m"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got = [(r.node, r.value) async for r in p.results()]
    report = await asyncio.wait_for(p.wait(), 30)
    assert report.status is RunStatus.COMPLETED
    zipped = [v for n, v in got if n == "z"]
    merged = [v for n, v in got if n == "m"]
    assert zipped == [(i, i) for i in range(300)]  # concurrency 1: in order either way
    assert sorted(merged) == sorted([(i,) for i in range(300)] * 2)
    assert most == {"z": 1, "m": 1}
    assert report.nodes["z"].items_in == 300 and report.nodes["m"].items_in == 600
