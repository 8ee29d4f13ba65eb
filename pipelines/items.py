"""Running items: a run of items in place, an item task's body, an item's slot, and the
sentinels a node's window shares with them.

They run for a `Window` (window.py), seen here only as the `ItemRunner` protocol: this module
imports neither the window nor the node."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from .metrics import NodeMetrics

__all__ = ["DROP", "FAILED", "IDLE", "NOTHING", "PARK", "ItemRunner", "Pending", "Run",
           "host_items", "run_items", "settle"]


class ItemRunner(Protocol):
    """What running items needs from the window that owns them."""

    metrics: NodeMetrics
    #: the node's coroutine and the node passed as its first argument (the fast, plain call)
    fn: Callable[..., Any]
    node: Any
    #: the call of one item when it is not plain (arguments, retries, a timeout); None if plain
    call: Callable[[tuple[Any, ...]], Any] | None

    def failed(self, item: Any, exc: BaseException) -> None:
        """Count and report a failed item (raises NodeFailed for on_error "fail")."""

    def item_call(self, item: tuple[Any, ...]) -> Any:
        """The coroutine of one item, however it is called."""

    def settled(self, slot: Pending, more: bool) -> Any:
        """An item that ran in a task has its outcome in `slot`: the slot of the next item the
        same task runs, PARK (wait in `parked`), or None (the task ends)."""

    async def parked(self) -> Pending | None:
        """Wait, as an idle item task, until the window hands over an item (None: end)."""


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "pipelines.DROP"


#: Return this from a processor coroutine to pass nothing on for that item (a filter).
DROP: Final = _Drop()
FAILED: Final = object()  # an item whose error was counted and skipped
NOTHING: Final = object()  # a run of items that finished without suspending
IDLE: Final = object()  # a host task whose run of items finished in place: nothing to do
PARK: Final = object()  # an item task with no next item now: it waits to be handed one


class Run:
    """A run of items started in place: `items[start:end]`, the values that pass on, how many
    others finished without a value (dropped or failed), and whether the run was handed over
    to a task (it suspended)."""

    __slots__ = ("items", "start", "end", "values", "skipped", "detached")

    def __init__(self, items: list[tuple[Any, ...]], start: int, end: int) -> None:
        self.items = items
        self.start = start
        self.end = end
        self.values: list[Any] = []
        self.skipped = 0
        self.detached = False


async def run_items(run: Run, window: ItemRunner) -> Any:
    """Run items one after another inside this one coroutine.

    An item that finishes without suspending costs one `await` of its coroutine and an append;
    nothing else is written per item. When an item suspends, the window hands this coroutine
    over to a task (`run.detached`): it finishes that one item, returns its value, and leaves
    the rest to the window. `run.values` gets only what passes on."""
    node, fn, call = window.node, window.fn, window.call
    values = run.values
    append = values.append
    drop = DROP
    items = run.items
    if run.start or run.end != len(items):
        items = items[run.start:run.end]
    for item in items:
        try:
            value = await (fn(node, item) if call is None else call(item))
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if run.detached or task is None or task.cancelling():
                raise
            # The item raised CancelledError of its own (the node is not being cancelled):
            # an item error like any other, not a silent end of the node.
            run.skipped += 1
            window.failed(item, exc)
            continue
        except Exception as exc:
            if run.detached:
                raise  # the task's outcome reports it, as for any item task
            run.skipped += 1
            window.failed(item, exc)  # counts it; raises NodeFailed for on_error "fail"
            continue
        if run.detached:
            return value
        if value is drop:
            run.skipped += 1
            window.metrics.dropped += 1
        else:
            append(value)
    return None


class Pending:
    """An item running in a task: its slot in the window, then its outcome."""

    __slots__ = ("item", "task", "aw", "done", "value", "error", "start")

    def __init__(self, item: tuple[Any, ...], aw: Any = None, start: float | None = None) -> None:
        self.item = item
        self.task: asyncio.Task[None] | None = None
        self.aw = aw  # what the task awaits: None (start the item), Resumed, or IDLE
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.start = time.perf_counter() if start is None else start


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
    while True:
        more = False
        try:
            slot.value = await (window.item_call(slot.item) if aw is None else aw)
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
            nxt = await window.parked()
        if nxt is None:
            return
        slot, aw = nxt, None
