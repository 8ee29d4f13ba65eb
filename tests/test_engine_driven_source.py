"""A source that alone feeds a node of the shared task is driven by that task (driven.py): its
steps run there while it only waits for room. What the source sees must be what its own task
gives it: the same current task throughout, its own context, cancellation where it waits, a
timeout it entered, its errors; and the shared task must still let other tasks run."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from pipelines import Plumber, RunStatus
from pipelines.processor import InputProcessor, Processor

BOTH = pytest.mark.parametrize("shared", [True, False], ids=["shared", "task-each"])

where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="unset")


def ident(x: Any) -> Any:
    return x


async def add1(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    return q_elt[0] + 1


async def slow(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    await asyncio.sleep(0.01)
    return q_elt[0]


def chain(source: Any, second: Any = add1, **props: Any) -> dict[str, Any]:
    return {"nodes": {"s": {"coro": source}, "a": {"coro": add1},
                      "b": {"coro": second, "properties": props}},
            "graph": {"s": ["a"], "a": ["b"], "b": None}}


async def run_collect(spec: dict[str, Any], shared: bool) -> tuple[Any, list[Any]]:
    p = Plumber(spec, coro_map=ident, collect=True, name="g", shared_task=shared)
    got = []
    async with asyncio.timeout(20):
        async for batch in p.result_batches():
            got.extend(r.value for r in batch)
        return await p.wait(), got


@BOTH
async def test_a_source_that_awaits_something_else_keeps_its_task(shared: bool) -> None:
    """Driven while it only puts; once it awaits a timer its own task takes it over, and it
    sees one and the same current task, with its pipeline's name, from start to end."""
    seen: list[tuple[int, asyncio.Task[Any] | None, bool]] = []

    async def source(self: InputProcessor, output_q: Any) -> None:
        for i in range(600):
            if i % 200 == 150:
                await asyncio.sleep(0.001)
            seen.append((i, asyncio.current_task(), self.driven))
            await output_q.put(i)

    report, got = await run_collect(chain(source), shared)
    assert report.status is RunStatus.COMPLETED, report.error
    assert got == [i + 2 for i in range(600)]
    tasks = {t for _, t, _ in seen}
    assert len(tasks) == 1
    (task,) = tasks
    assert task is not None and task.get_name() == "pipelines:g:s"
    driven = [i for i, _, d in seen if d]
    if shared:  # driven until its first sleep, its own task's after
        assert driven == list(range(150))
    else:
        assert driven == []


@BOTH
async def test_a_timeout_the_source_entered_expires_while_it_waits_for_room(
        shared: bool) -> None:
    outcome: list[Any] = []

    async def source(self: InputProcessor, output_q: Any) -> None:
        sent = 0
        driven_before = False
        try:
            async with asyncio.timeout(0.15):
                for i in range(1000):
                    driven_before = self.driven
                    await output_q.put(i)
                    sent += 1
        except TimeoutError:
            outcome.append((driven_before, sent, self.driven))
        await output_q.put(-1)  # the source goes on after its timeout

    report, got = await run_collect(chain(source, slow, queue_size=2, concurrency=1), shared)
    assert report.status is RunStatus.COMPLETED, report.error
    assert len(outcome) == 1
    driven_before, sent, driven_after = outcome[0]
    assert 0 < sent < 1000
    assert driven_before is shared  # shared: the timeout found it driven, waiting for room
    assert driven_after is False  # its own task ran it from the timeout on
    assert got == [i + 1 for i in range(sent)] + [0]
    assert report.nodes["s"].status == "done"


@BOTH
async def test_cancelling_the_pipeline_reaches_a_source_that_waits_for_room(
        shared: bool) -> None:
    events: list[str] = []

    async def source(self: InputProcessor, output_q: Any) -> None:
        driven = False
        try:
            for i in range(10_000):
                driven = self.driven
                await output_q.put(i)
        except asyncio.CancelledError:
            events.append(f"cancelled, driven: {driven}")
            raise
        finally:
            events.append("finally")

    before = asyncio.all_tasks()
    p = Plumber(chain(source, slow, queue_size=2, concurrency=1), coro_map=ident, name="g",
                shared_task=shared)
    p.start()
    await asyncio.sleep(0.1)
    report = await p.cancel()
    assert report.status is RunStatus.CANCELLED
    assert events == [f"cancelled, driven: {shared}", "finally"]
    assert report.nodes["s"].status == "cancelled"
    assert asyncio.all_tasks() == before


@BOTH
@pytest.mark.parametrize("on_error", ["skip", "fail"])
async def test_a_source_that_raises(shared: bool, on_error: str) -> None:
    async def source(self: InputProcessor, output_q: Any) -> None:
        for i in range(300):
            if i == 200:
                raise ValueError("no more")
            await output_q.put(i)

    spec = chain(source)
    spec["nodes"]["s"]["properties"] = {"on_error": on_error}
    report, got = await run_collect(spec, shared)
    s = report.nodes["s"]
    assert s.errors == 1
    if on_error == "skip":  # the stream ends there; what it sent is processed
        assert report.status is RunStatus.COMPLETED, report.error
        assert got == [i + 2 for i in range(200)]
        assert s.status == "done" and s.items_out == 200
    else:
        assert report.status is RunStatus.FAILED
        assert report.error is not None and report.error.node == "s"
        assert "no more" in report.error.message
        assert s.status == "failed"


@BOTH
async def test_a_source_has_its_own_context(shared: bool) -> None:
    """What a source sets in a context variable stays its own (as in a task of its own)."""
    seen: list[str] = []

    async def source(self: InputProcessor, output_q: Any) -> None:
        where.set("source")
        for i in range(300):
            await output_q.put(i)
            seen.append(where.get())

    async def look(self: Processor, q_elt: tuple[Any, ...]) -> Any:
        return where.get()

    report, got = await run_collect(chain(source, look), shared)
    assert report.status is RunStatus.COMPLETED, report.error
    assert set(seen) == {"source"}
    assert set(got) == {"unset"} and len(got) == 300


@pytest.mark.parametrize("queue_size", [64, 2048])
async def test_the_shared_task_lets_other_tasks_run_while_it_drives_a_source(
        queue_size: int) -> None:
    """A source that never waits on anything but room keeps the shared task busy; the task
    still lets the event loop run others after 512 items from it (or one edge's worth, when
    the edge holds more: a source's step fills its edge)."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def source(self: InputProcessor, output_q: Any) -> None:
        for i in range(20_000):
            await output_q.put(i)

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    spec = chain(source)
    spec["nodes"]["a"]["properties"] = {"queue_size": queue_size}
    report = await Plumber(spec, coro_map=ident).run()
    t.cancel()
    assert report.status is RunStatus.COMPLETED, report.error
    assert report.nodes["b"].items_out == 20_000
    # 20,000 items: 39 yields at 512 items each, whatever the edge holds (its consumer takes
    # at most a batch per turn, so the source refills that much per pass); counting passes
    # alone, the loop would get about 16 turns in the whole run, at either size
    assert ticks - start >= 30


async def test_a_source_feeding_a_node_whose_items_wait_gets_its_own_task() -> None:
    """Driven while the node it feeds runs its items in place; once that node's items wait
    (they run in tasks of their own, which take the next items themselves) the source's own
    task takes it over at its next full edge, as one with a task of its own from the start."""
    seen: list[tuple[int, bool]] = []

    async def source(self: InputProcessor, output_q: Any) -> None:
        for i in range(400):
            seen.append((i, self.driven))
            await output_q.put(i)

    async def waits(self: Processor, q_elt: tuple[Any, ...]) -> Any:
        if q_elt[0] >= 100:
            await asyncio.sleep(0)
        return q_elt[0]

    spec = {"nodes": {"s": {"coro": source},
                      "w": {"coro": waits, "properties": {"queue_size": 8}},
                      "a": {"coro": add1}},
            "graph": {"s": ["w"], "w": ["a"], "a": None}}
    report, got = await run_collect(spec, True)
    assert report.status is RunStatus.COMPLETED, report.error
    assert got == list(range(1, 401))
    driven = [i for i, d in seen if d]
    # Driven through the items that finish in place, and a little after: the node starts
    # items in tasks after the first turn in which more of them waited than finished in place
    # (within two edges' worth of the first that waits), and the source is let go when it
    # next fills its edge (one more).
    assert driven == list(range(len(driven))) and 100 <= len(driven) <= 100 + 3 * 8, len(driven)
