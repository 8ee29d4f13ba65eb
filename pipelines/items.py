"""Running items: a run of items in place, an item task's body, an item's slot, and the
sentinels a node's window shares with them.

They run for a `Window` (window.py), seen here only as the `ItemRunner` protocol: this module
imports neither the window nor the node."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Generator
from typing import Any, Final, Protocol

from .metrics import NodeMetrics

__all__ = ["BETWEEN", "DROP", "FAILED", "IDLE", "PARK", "ItemRunner", "Pending", "Run",
           "host_items", "item_raised", "next_run", "run_items", "settle"]


class ItemRunner(Protocol):
    """What running items needs from the window that owns them."""

    metrics: NodeMetrics
    #: how one item is called, as ``fn(node, item)``: the node's coroutine itself when it is
    #: plain, else a function adding the node's arguments, retries and a timeout
    fn: Callable[[Any, tuple[Any, ...]], Any]
    node: Any

    def failed(self, item: Any, exc: BaseException) -> None:
        """Count and report a failed item (raises NodeFailed for on_error "fail")."""

    def settled(self, slot: Pending, more: bool) -> Any:
        """An item that ran in a task has its outcome in `slot`: the slot of the next item the
        same task runs, PARK (wait in `parked`), or None (the task ends)."""

    async def parked(self, task: asyncio.Task[Any]) -> Pending | None:
        """Wait, as an idle item task, until the window hands over an item (None: end)."""


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "pipelines.DROP"


#: Return this from a processor coroutine to pass nothing on for that item (a filter).
DROP: Final = _Drop()
FAILED: Final = object()  # an item whose error was counted and skipped
BETWEEN: Final = object()  # the eager runner finished a run in place and waits for the next
IDLE: Final = object()  # a host task whose run of items finished in place: nothing to do
PARK: Final = object()  # an item task with no next item now: it waits to be handed one


class Run:
    """A run of items started in place: `items` (the run's own list: the window empties it to
    stop the runner once an item suspends), the values that pass on, how many others finished
    without a value (dropped or failed), and whether the run was handed over to a task."""

    __slots__ = ("items", "values", "skipped", "detached")

    def __init__(self, items: list[tuple[Any, ...]]) -> None:
        self.items = items
        self.values: list[Any] = []
        self.skipped = 0
        self.detached = False


@types.coroutine
def next_run() -> Generator[Any, Any, Run]:
    """Suspend the eager runner between runs: `first_step_as` gets BETWEEN, and the next
    run is sent in."""
    run: Run = yield BETWEEN
    return run


async def run_items(run: Run, window: ItemRunner) -> Any:
    """The window's eager runner: run items one after another inside this one coroutine, one
    run after another (between runs it yields BETWEEN and is sent the next; one coroutine
    serves a node's runs until an item suspends).

    An item that finishes without suspending costs one `await` of its coroutine and an append;
    nothing else is written per item, nor checked. When an item suspends, the window hands
    this coroutine over to a task (`run.detached`) and empties `run.items`: the loop ends
    after that one item, whose value it returns; the window runs the rest. `run.values` gets
    only what passes on."""
    node, fn, drop = window.node, window.fn, DROP
    while True:
        append = run.values.append
        value = None
        for item in run.items:
            try:
                value = await fn(node, item)
                if value is not drop:
                    append(value)
                    continue
            except BaseException as exc:
                if not item_raised(run, window, item, exc):
                    raise
                continue
            if not run.detached:  # DROP (a detached item's DROP is its task's outcome)
                run.skipped += 1
                window.metrics.dropped += 1
        if run.detached:
            return value
        run = await next_run()


def item_raised(run: Run, window: ItemRunner, item: Any, exc: BaseException) -> bool:
    """An item of `run` raised `exc`: True when it was counted and reported (the run goes on),
    False when the runner must raise it (it was handed over to a task, whose outcome reports
    it; the node is being cancelled; not an error of the item). Raises NodeFailed for
    on_error "fail"."""
    if run.detached or not isinstance(exc, Exception | asyncio.CancelledError):
        return False
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is None or task.cancelling():
            return False
        # The item raised CancelledError of its own (the node is not being cancelled): an item
        # error like any other, not a silent end of the node.
    run.skipped += 1
    window.failed(item, exc)  # counts it; raises NodeFailed for on_error "fail"
    return True


class Pending:
    """An item running in a task: its slot in the window, then its outcome (`start`: when it
    started, for the latency metric, on the items the window times; else 0.0)."""

    __slots__ = ("item", "task", "aw", "done", "value", "error", "start")

    def __init__(self, item: tuple[Any, ...], start: float = 0.0,
                 task: asyncio.Task[Any] | None = None, aw: Any = None) -> None:
        self.item = item
        self.task = task
        self.aw = aw  # what the task awaits: None (start the item), Resumed, or IDLE
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.start = start  # when it started (perf_counter), or 0.0: not timed


async def host_items(window: ItemRunner, slot: Pending, ready: asyncio.Future[None]) -> None:
    """The window's spare task: waits until it is handed an item that suspended in its eager
    first step (run with this task as the current one), then runs it as any item task."""
    try:
        await ready
    except asyncio.CancelledError as exc:
        if slot.aw is IDLE:
            raise  # never handed an item: the node ended
        slot.aw.throw_first(exc)  # cancelled (a timeout the item entered?) before it woke
    await settle(window, slot)


async def settle(window: ItemRunner, slot: Pending) -> None:
    """An item task: run an item to its end and tell the window at once (no done-callback
    hop); then, as a worker of a pool does, run the next item the window gives back, in this
    same task and step, or wait idle to be handed one (`PARK`), or end (None).

    `slot.aw` is None for an item not started yet: its coroutine is made here, so a task
    cancelled before its first step leaves no coroutine that was never awaited. It is IDLE for
    a host task whose items all finished during their eager first step: nothing is left to do.
    """
    aw = slot.aw
    if aw is IDLE:
        return
    fn, node = window.fn, window.node
    while True:
        more = False
        try:
            slot.value = await (fn(node, slot.item) if aw is None else aw)
            more = True
        except asyncio.CancelledError:
            slot.error = asyncio.CancelledError("item task was cancelled")
            raise
        except Exception as exc:
            slot.error = exc
            more = True
        finally:
            slot.done = True
            nxt = window.settled(slot, more)
        if nxt is PARK:
            assert slot.task is not None  # (PARK is only for a task's own slot)
            nxt = await window.parked(slot.task)
        if nxt is None:
            return
        slot, aw = nxt, None
