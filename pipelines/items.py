"""Running items: the eager batch driver, an item's task and its slot in the reorder window,
and the sentinels a node's loop shares with them.

The node they run for is any `ItemOwner` (a `Processor`): this module does not import it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from .metrics import NodeMetrics

__all__ = ["DROP", "FAILED", "IDLE", "NOTHING", "ItemOwner", "Pending", "Run", "host_items",
           "run_items", "settle"]


class ItemOwner(Protocol):
    """What running an item needs from its node."""

    metrics: NodeMetrics

    def item_failed(self, item: Any, exc: BaseException) -> object:
        """Count and report a failed item (raises NodeFailed for on_error "fail")."""

    def guarded(self, item: tuple[Any, ...]) -> Any:
        """The item's coroutine with retries and a timeout."""

    def call(self, item: tuple[Any, ...]) -> Any:
        """The item's coroutine, guarded when the node's properties ask for it."""

    def settled(self, slot: Pending) -> None:
        """An item that ran in a task of its own has its outcome in `slot`."""


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "pipelines.DROP"


#: Return this from a processor coroutine to pass nothing on for that item (a filter).
DROP: Final = _Drop()
FAILED: Final = object()  # an item whose error was counted and skipped
NOTHING: Final = object()  # a run of items that finished without suspending
IDLE: Final = object()  # a host task whose run of items finished in place: nothing to do


class Run:
    """State shared by a node's loop and `run_items`: the items (from `start` up to `end`), how
    far the run got, the values that pass on, and whether the run was handed over to a task."""

    __slots__ = ("items", "i", "end", "values", "detached", "refill", "in_place")

    def __init__(self, items: list[tuple[Any, ...]], start: int, end: int,
                 refill: Callable[[], list[tuple[Any, ...]]] | None = None) -> None:
        self.items = items
        self.i = start
        self.end = end
        #: more items once these are done, while everything finishes in place (None: no more)
        self.refill = refill
        self.in_place = 0  # items that finished without suspending
        self.values: list[Any] = []
        self.detached = False


async def run_items(run: Run, node: ItemOwner, fn: Callable[..., Any],
                     args: dict[str, Any], guarded: bool) -> Any:
    """Run items one after another inside this one coroutine.

    An item that finishes without suspending costs one `await` (no `coroutine.send()` and no
    StopIteration per item); when all are done, `run.refill` may give more. When an item
    suspends, the node's loop hands this coroutine over to a task (`run.detached`): it finishes
    that one item, returns its value, and leaves the rest to the loop. `run.values` gets only
    what passes on (failures and DROPs are counted here)."""
    items, values = run.items, run.values
    append = values.append
    n = run.end
    while True:
        if run.i >= n:
            more = run.refill() if run.refill is not None else None
            if not more:
                break
            run.items = items = more
            n = len(more)
            run.i, run.end = 0, n
        item = items[run.i]
        run.i += 1
        try:
            value = await (node.guarded(item) if guarded
                           else fn(node, item, **args) if args else fn(node, item))
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if run.detached or task is None or task.cancelling():
                raise
            # The item raised CancelledError of its own (the node is not being cancelled):
            # an item error like any other, not a silent end of the node.
            run.in_place += 1
            node.item_failed(item, exc)
            continue
        except Exception as exc:
            if run.detached:
                raise  # the task's outcome reports it, as for any item task
            run.in_place += 1
            node.item_failed(item, exc)  # counts it; raises NodeFailed for on_error "fail"
            continue
        if run.detached:
            return value
        run.in_place += 1
        if value is DROP:
            node.metrics.dropped += 1
        else:
            append(value)
    return None


class Pending:
    """An item running in a task of its own: its slot in the reorder window, then its outcome."""

    __slots__ = ("item", "task", "aw", "done", "value", "error", "start")

    def __init__(self, item: tuple[Any, ...], aw: Any = None) -> None:
        self.item = item
        self.task: asyncio.Task[None] | None = None
        self.aw = aw  # what the task awaits: None (start the item), Resumed, or IDLE
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.start = time.perf_counter()


async def host_items(node: ItemOwner, slot: Pending, ready: asyncio.Future[None]) -> None:
    """A node's spare task: waits until the node hands it an item that suspended in its eager
    first step (run with this task as the current one), then runs that item to its end."""
    try:
        await ready
    except asyncio.CancelledError as exc:
        if slot.aw is IDLE:
            raise  # never handed an item: the node ended
        slot.aw.throw_first(exc)  # cancelled (a timeout the item entered?) before it woke
    await settle(node, slot)


async def settle(node: ItemOwner, slot: Pending) -> None:
    """Run one item to its end and tell the node at once (no done-callback hop).

    `slot.aw` is None for an item not started yet: its coroutine is made here, so a task
    cancelled before its first step leaves no coroutine that was never awaited. It is IDLE for
    a host task whose items all finished during their eager first step: nothing is left to do.
    """
    aw = slot.aw
    if aw is IDLE:
        return
    try:
        slot.value = await (node.call(slot.item) if aw is None else aw)
    except asyncio.CancelledError:
        slot.error = asyncio.CancelledError("item task was cancelled")
        raise
    except Exception as exc:
        slot.error = exc
    finally:
        slot.done = True
        node.settled(slot)
