"""The window of running items (pipelines/window.py): item tasks work as the workers of a pool
(they take the next item themselves, or park), and still keep every promise of the window:
at most `concurrency` running, results in input order when `ordered`, the work budget, drops,
failures, and `on_error: fail`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipelines import DROP, LIBRARY_LIMITS, NodeFailed, Plumber, RunStatus
from pipelines.processor import Processor


async def src_range(self: Processor, output_q: Any, n: int) -> None:
    for i in range(n):
        await output_q.put(i)


def chain(coro: Any, n: int, **props: Any) -> dict[str, Any]:
    return {"nodes": {"src": {"coro": src_range, "args": {"n": n}},
                      "w": {"coro": coro, "properties": props}},
            "graph": {"src": ["w"], "w": None}}


class Watch:
    """What the items saw: the tasks they ran in, how many ran at once."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()  # kept alive: ids are not reused
        self.running = 0
        self.peak = 0

    async def item(self, value: int, delay: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(delay)
        finally:
            self.running -= 1


@pytest.mark.parametrize("ordered", [True, False])
async def test_item_tasks_run_many_items_each_within_the_concurrency(ordered: bool) -> None:
    watch = Watch()

    async def slow(self: Processor, q_elt: tuple[int]) -> int:
        await watch.item(q_elt[0], 0.001 * (q_elt[0] % 3))
        return q_elt[0] * 10

    plumber = Plumber(chain(slow, 400, concurrency=8, ordered=ordered), coro_map=lambda c: c,
                      collect=True)
    got = [r.value async for r in plumber.results()]
    if ordered:
        assert got == [i * 10 for i in range(400)]
    else:
        assert sorted(got) == [i * 10 for i in range(400)]
    assert watch.peak == 8
    # a task per item would be 400 tasks: the workers take the next item themselves
    assert len(watch.tasks) <= 400 // 4, len(watch.tasks)
    report = await plumber.wait()
    assert report.nodes["w"].items_in == 400 and report.nodes["w"].items_out == 400


async def test_a_slow_head_holds_the_ordered_window_to_twice_its_concurrency() -> None:
    head_done = asyncio.Event()
    started_while_head_ran: list[int] = []
    running = [0, 0]  # now, peak

    async def item(self: Processor, q_elt: tuple[int]) -> int:
        i = q_elt[0]
        running[0] += 1
        running[1] = max(running)
        if not head_done.is_set():
            started_while_head_ran.append(i)
        if i == 0:
            await asyncio.sleep(0.2)
            head_done.set()
        else:
            await asyncio.sleep(0)
        running[0] -= 1
        return i

    plumber = Plumber(chain(item, 100, concurrency=6), coro_map=lambda c: c, collect=True)
    got = [r.value async for r in plumber.results()]
    assert got == list(range(100))
    # Behind the slow head, items go on starting (at most 6 running) while their results wait
    # in input order, until the window spans 12 items: it takes no more until the head ends.
    assert started_while_head_ran == list(range(12)), started_while_head_ran
    assert running[1] == 6


async def test_drops_and_failures_are_counted_when_tasks_take_items_themselves() -> None:
    async def item(self: Processor, q_elt: tuple[int]) -> Any:
        await asyncio.sleep(0)
        i = q_elt[0]
        if i % 10 == 3:
            raise ValueError(f"bad {i}")
        if i % 10 == 5:
            return DROP
        return i

    plumber = Plumber(chain(item, 200, concurrency=5), coro_map=lambda c: c, collect=True)
    got = [r.value async for r in plumber.results()]
    assert got == [i for i in range(200) if i % 10 not in (3, 5)]
    report = await plumber.wait()
    node = report.nodes["w"]
    assert node.errors == 20 and node.dropped == 20 and node.items_in == 200


async def test_on_error_fail_stops_the_workers() -> None:
    seen: list[int] = []

    async def item(self: Processor, q_elt: tuple[int]) -> int:
        seen.append(q_elt[0])
        await asyncio.sleep(0.001)
        if q_elt[0] == 30:
            raise ValueError("stop here")
        return q_elt[0]

    plumber = Plumber(chain(item, 10_000, concurrency=4, on_error="fail"),
                      coro_map=lambda c: c, collect=True)
    got: list[int] = []
    with pytest.raises(NodeFailed, match="stop here"):
        async for r in plumber.results():
            got.append(r.value)
    report = await plumber.wait()
    assert report.status is RunStatus.FAILED
    assert report.error is not None and "stop here" in report.error.message
    assert got == list(range(len(got))) and len(got) <= 30
    assert len(seen) < 200  # no worker went on through the input after the failure


async def test_the_work_budget_holds_when_tasks_take_items_themselves() -> None:
    async def item(self: Processor, q_elt: tuple[int]) -> int:
        await asyncio.sleep(0)
        return q_elt[0]

    spec = {"nodes": {"src": {"coro": src_range, "args": {"n": 3000}},
                      "a": {"coro": item, "properties": {"concurrency": 16}},
                      "b": {"coro": item, "properties": {"concurrency": 16}}},
            "graph": {"src": ["a"], "a": ["b"], "b": None}}
    limits = LIBRARY_LIMITS.model_copy(update={"max_pipeline_items": 2500})
    report = await Plumber(spec, coro_map=lambda c: c, limits=limits).run()
    assert report.status is RunStatus.FAILED and report.error is not None
    assert report.error.code == "limit_exceeded"
    taken = report.nodes["a"].items_in + report.nodes["b"].items_in
    assert 2500 < taken <= 2500 + 2 * 256


async def test_no_item_task_outlives_the_run() -> None:
    async def item(self: Processor, q_elt: tuple[int]) -> int:
        await asyncio.sleep(0)
        return q_elt[0]

    before = len(asyncio.all_tasks())
    report = await Plumber(chain(item, 50, concurrency=32), coro_map=lambda c: c).run()
    assert report.status is RunStatus.COMPLETED and report.results == 50
    assert len(asyncio.all_tasks()) == before  # no parked task is left behind


@pytest.mark.parametrize("ordered", [True, False])
async def test_one_eager_runner_serves_runs_until_an_item_suspends(
        monkeypatch: pytest.MonkeyPatch, ordered: bool) -> None:
    # Items that finish in place share one runner coroutine per node, whatever the number of
    # turns; each item that suspends takes the runner with it (to its task) and the next run
    # makes a new one. Every result still arrives (in input order when ordered), once.
    import pipelines.window as window_module

    made = [0]
    real = window_module.run_items

    def counting(*args: Any) -> Any:
        made[0] += 1
        return real(*args)

    monkeypatch.setattr(window_module, "run_items", counting)

    async def quick(self: Processor, q_elt: tuple[int]) -> int:
        return q_elt[0] + 1

    plumber = Plumber(chain(quick, 5000, ordered=ordered), coro_map=lambda c: c, collect=True)
    got = [r.value async for r in plumber.results()]
    assert sorted(got) == list(range(1, 5001))
    assert made[0] == 1  # 5,000 items over dozens of turns, one runner

    made[0] = 0

    async def some_wait(self: Processor, q_elt: tuple[int]) -> int:
        if q_elt[0] % 100 == 7:
            await asyncio.sleep(0)
        return q_elt[0] + 1

    plumber = Plumber(chain(some_wait, 5000, ordered=ordered), coro_map=lambda c: c,
                      collect=True)
    got = [r.value async for r in plumber.results()]
    if ordered:
        assert got == list(range(1, 5001))
    else:
        assert sorted(got) == list(range(1, 5001))
    # a new runner after an item waited (at most one per item that waited, 50, and the
    # first; fewer when items behind a waiting one ran in tasks of their own)
    assert 2 <= made[0] <= 51


async def test_items_are_timed_for_the_latency_metric() -> None:
    # Items are timed on some turns (in place) or one in eight (in tasks): the metric is never
    # left at zero, and it is a time per item, not per turn of many items.
    async def busy(self: Processor, q_elt: tuple[int]) -> int:
        total = 0
        for k in range(2000):  # some work, no waiting: every item finishes in place
            total += k
        return total

    async def sleepy(self: Processor, q_elt: tuple[int]) -> int:
        await asyncio.sleep(0.004)  # every item runs in a task
        return q_elt[0]

    plumber = Plumber(chain(busy, 3000), coro_map=lambda c: c)
    report = await plumber.run()
    assert report.status is RunStatus.COMPLETED
    snap = plumber.nodes["w"].metrics.snapshot()
    assert 0 < snap["latency_ms"] < 50, snap

    plumber = Plumber(chain(sleepy, 300, concurrency=50), coro_map=lambda c: c)
    report = await plumber.run()
    assert report.status is RunStatus.COMPLETED
    snap = plumber.nodes["w"].metrics.snapshot()
    assert 3.5 <= snap["latency_ms"] < 500, snap


async def test_an_unordered_window_keeps_starting_items_while_its_results_wait() -> None:
    # Unordered, as ordered: finished results that wait for a full edge count against the
    # window's cap on held results (256 here), not against its concurrency, so the items keep
    # running meanwhile; at most `concurrency` run at once all the same.
    release = asyncio.Event()
    running, peak = [0], [0]

    async def work(self: Processor, q_elt: tuple[int]) -> int:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0)
        running[0] -= 1
        return q_elt[0]

    async def stuck(self: Processor, q_elt: tuple[int]) -> int:
        await release.wait()
        return q_elt[0]

    spec = {"nodes": {"src": {"coro": src_range, "args": {"n": 2000}},
                      "w": {"coro": work, "properties": {"concurrency": 4, "ordered": False}},
                      "end": {"coro": stuck, "properties": {"concurrency": 1, "queue_size": 1}}},
            "graph": {"src": ["w"], "w": ["end"], "end": None}}
    plumber = Plumber(spec, coro_map=lambda c: c)
    run = asyncio.create_task(plumber.run())
    for _ in range(5000):  # event-loop turns: far more than filling the window takes
        await asyncio.sleep(0)
    w = plumber.nodes["w"].metrics
    assert peak[0] <= 4
    assert 200 <= w.items_in <= 4 + 256 + 2, w.items_in  # running, held, the edge and `end`
    release.set()
    report = await run
    assert report.status is RunStatus.COMPLETED
    assert report.nodes["end"].items_out == 2000


async def test_an_item_task_passes_its_result_on_itself() -> None:
    # As a worker of a pool puts its own result: once an item that ran in a task finishes,
    # its result is on the outlet before any turn of the node (or of the shared task) runs,
    # so a downstream item task that finishes in the same loop iteration finds it.
    gates = [asyncio.get_running_loop().create_future() for _ in range(3)]
    started = [asyncio.Event() for _ in range(3)]

    async def gated(self: Processor, q_elt: tuple[int]) -> int:
        started[q_elt[0]].set()
        await gates[q_elt[0]]
        return q_elt[0] * 10

    async def end(self: Processor, q_elt: tuple[int]) -> int:
        return q_elt[0]

    spec = {"nodes": {"src": {"coro": src_range, "args": {"n": 3}},
                      "w": {"coro": gated, "properties": {"concurrency": 3}},
                      "end": {"coro": end}},
            "graph": {"src": ["w"], "w": ["end"], "end": None}}
    plumber = Plumber(spec, coro_map=lambda c: c, collect=True).start()
    w = plumber.nodes["w"].metrics
    for i in range(3):
        await started[i].wait()
        assert w.items_out == i
        gates[i].set_result(None)
        # one step of the item's task runs before this task's next step, and nothing else
        # that was not already scheduled: the node's turn would come after it
        await asyncio.sleep(0)
        assert w.items_out == i + 1, i
    assert [r.value async for r in plumber.results()] == [0, 10, 20]
    assert (await plumber.wait()).status is RunStatus.COMPLETED


async def test_what_passing_on_from_an_item_task_raises_ends_the_run() -> None:
    # An item's failure reported while its task passes results on: the error callback raises.
    # The node's next turn raises it, as when the turn itself reported the failure; the run
    # ends (it does not hang, and the item task does not swallow it).
    async def item(self: Processor, q_elt: tuple[int]) -> int:
        await asyncio.sleep(0)
        if q_elt[0] == 5:
            raise ValueError("bad item")
        return q_elt[0]

    def callback(err: Any) -> None:
        raise RuntimeError(f"callback broke on {err.item}")

    plumber = Plumber(chain(item, 50, concurrency=4), coro_map=lambda c: c,
                      on_item_error=callback)
    async with asyncio.timeout(10):
        report = await plumber.run()
    assert report.status is RunStatus.FAILED
    assert report.error is not None and "callback broke on (5,)" in report.error.message


async def test_a_zip_that_ends_detaches_a_node_whose_items_wait() -> None:
    # The long input's items run in tasks that pass their results on themselves; once the zip
    # has ended with its short input, the one that finds every downstream node gone leaves it
    # to the node's turn, which detaches the node (it does not fail, nor hang).
    async def waits(self: Processor, q_elt: tuple[int]) -> int:
        await asyncio.sleep(0)
        return q_elt[0] + 1

    async def pair(self: Processor, q_elt: tuple[int, int]) -> list[int]:
        return list(q_elt)

    spec = {"nodes": {"long": {"coro": src_range, "args": {"n": 5000}},
                      "short": {"coro": src_range, "args": {"n": 20}},
                      "l": {"coro": waits, "properties": {"concurrency": 8}},
                      "z": {"coro": pair, "properties": {"queue_size": 4}}},
            "graph": {"long": ["l"], "l": ["z"], "short": ["z"], "z": None}}
    plumber = Plumber(spec, coro_map=lambda c: c, collect=True)
    async with asyncio.timeout(10):
        got = [r.value async for r in plumber.results()]
        report = await plumber.wait()
    assert report.status is RunStatus.COMPLETED, report.error
    assert got == [[i + 1, i] for i in range(20)]
    assert report.nodes["l"].status == "done"
    assert report.nodes["l"].items_in < 5000  # it stopped taking input once detached


async def test_the_window_and_its_node_keep_fewer_than_30_attributes() -> None:
    # CPython 3.11 keeps reads of an instance's attributes specialized only while its class's
    # instances share fewer than 30 keys; a 30th attribute on the window once cost every item
    # of a chain of quick nodes about 1% more instructions (W1: 10,431 -> 10,559 per item).
    async def item(self: Processor, q_elt: tuple[int]) -> int:
        await asyncio.sleep(0)
        return q_elt[0]

    plumber = Plumber(chain(item, 300, concurrency=4, timeout=5.0), coro_map=lambda c: c)
    report = await plumber.run()
    assert report.status is RunStatus.COMPLETED
    for name, node in plumber.nodes.items():
        assert len(vars(node)) < 30, (name, sorted(vars(node)))
        assert len(vars(node.window)) < 30, (name, sorted(vars(node.window)))
