"""The window of running items of one node.

It starts a batch of items eagerly (each item's first step runs in place, as the window's
spare task, see `hosting.py`: a coroutine that finishes without suspending never becomes a
task), owns the tasks of the items that suspend, hands back finished values (in input order
when `ordered`), and counts drops and failures. At most `concurrency` items run at once, and
the finished results it holds, with those the node is passing on, stay within a cap,
`max(concurrency, BATCH)`. When `ordered`, the items from the oldest still running to the
newest (running, or finished and waiting in input order) span at most `2 * concurrency`: a slow
item does not stop the others from starting until that many are in the window.

Item tasks work as the workers of a pool: one that finishes the result the node passes on next
passes on the results that are ready itself (`WindowNode.pass_ready`: downstream item tasks
that finish in the same loop iteration find them), then takes the next item from the node's
inlet itself while the window has room (no node turn, no new task in between); one with
nothing to do waits, parked, to be handed the next item the node starts. The node's turn
passes results on when they wait for room on a full edge.

The window keeps fewer than 30 attributes: CPython 3.11 keeps attribute reads of an instance
specialized (fast) only while its class's instances share fewer keys than that.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from .errors import NodeFailed
from .hosting import Resumed, first_step_as
from .items import BETWEEN, DROP, FAILED, IDLE, PARK, Pending, Run, host_items, run_items, settle
from .metrics import NodeMetrics
from .spec import NodeProperties

__all__ = ["BATCH", "Window", "WindowNode"]

#: Items a node takes from its inlet per turn at most (more when its concurrency is higher);
#: also what a window holds at least of finished results while the node passes results on.
BATCH = 256
#: Turns a window starts plain tasks after items mostly suspended, before it tries again to
#: run first steps in place.
_PROBE_TURNS = 32
#: Of the turns that run items in place and the items started in tasks, one in this many is
#: timed for the latency metric.
_TIMED = 8


class WindowNode(Protocol):
    """What a window needs from its node."""

    metrics: NodeMetrics
    args: dict[str, Any]

    @property
    def processor_coro(self) -> Callable[..., Any]:
        """The node's coroutine, called as ``coro(node, item, **args)``."""

    def item_failed(self, item: Any, exc: BaseException) -> object:
        """Count and report a failed item; FAILED, or raises NodeFailed (on_error "fail")."""

    def guarded(self, item: tuple[Any, ...]) -> Any:
        """One item with retries and a per-item timeout."""

    def take_one(self) -> tuple[Any, ...] | None:
        """The next item from the inlet, counted as taken, or None (none now, or the node's
        own turn must take it)."""

    def pass_ready(self) -> bool:
        """Pass on the window's ready results now (from an item task); False: the node's turn
        must (the window wakes the node)."""


def _guarded(node: WindowNode, item: tuple[Any, ...]) -> Any:
    return node.guarded(item)


def _with_args(node: WindowNode, item: tuple[Any, ...]) -> Any:
    return node.processor_coro(node, item, **node.args)


class Window:
    """The items a node runs and the results it has not passed on yet."""

    def __init__(self, node: WindowNode, props: NodeProperties,
                 wake: Callable[[], None]) -> None:
        self.node = node
        self.metrics = node.metrics
        guarded = props.on_error == "retry" or props.timeout is not None
        self._take_one = node.take_one  # (an item task's next item)
        #: how one item is called, as ``fn(node, item)`` (see items.ItemRunner)
        self.fn: Callable[[Any, tuple[Any, ...]], Any] = (
            _guarded if guarded else _with_args if node.args else node.processor_coro)
        self.concurrency = props.concurrency
        self._span = 2 * props.concurrency  # ordered: items in the slots at most
        self.ordered = props.ordered
        self._fail_fast = props.on_error == "fail"
        self._wake = wake
        #: items the node takes from its inlet per turn at most
        self.per_turn = max(props.concurrency, BATCH)
        #: finished results the window holds at most outside its running items
        self._cap = self.per_turn
        #: results the node is passing on now (they count against `_cap`)
        self.held = 0
        self.running = 0
        # ordered: items in input order, running (Pending), finished (a done Pending), or the
        # value of one that finished in place behind a running one
        self._slots: deque[Any] = deque()
        self._finished: list[Pending] = []  # unordered: finished, not passed on
        self._tasks: set[asyncio.Task[Any]] = set()
        self._parked: list[tuple[asyncio.Future[Pending | None], asyncio.Task[Any]]] = []
        self._input_done = False
        # a timeout binds to the current task: with one, every item owns its task from the start
        #: True while the window runs items' first steps in place (they mostly finish without
        #: suspending); False while it starts them in tasks (they mostly wait: I/O, timers)
        self.in_place = props.timeout is None
        self._can_run_in_place = self.in_place
        self._probe = 0
        # the spare task the next eager first step runs as, its slot, and its go-ahead
        self._spare: asyncio.Task[Any] | None = None
        self._spare_slot: Pending | None = None
        self._go: asyncio.Future[None] | None = None
        self._run = Run([])
        self._ticks = 0  # the first turn or task item is timed (then one in _TIMED)
        #: the eager runner (items.run_items), between runs; None until the next run makes one
        self._runner: Coroutine[Any, Any, Any] | None = None
        # the node's loop and task: set by `bind`, which the node calls before anything else
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._task: asyncio.Task[Any] = None  # type: ignore[assignment]

    def bind(self) -> None:
        """Called by the node's task when it starts: first steps run in place as its stand-in."""
        task = asyncio.current_task()
        assert task is not None, "a window runs in its node's task"
        self._loop, self._task = asyncio.get_running_loop(), task

    # -- state ---------------------------------------------------------------------------
    def room(self) -> int:
        """Items the window can still start: `concurrency` less those running, while the
        finished results it holds and those the node is passing on stay within its cap (and,
        when `ordered`, its slots within twice `concurrency`)."""
        running = self.running
        room = self.concurrency - running
        if self.ordered:
            n = len(self._slots)
            if not n:  # (nothing waits: within the span, and no finished result held)
                held = self._cap - self.held
                return held if held < room else room
            if self._span - n < room:
                room = self._span - n
            held = n - running  # finished, waiting in the slots
        else:
            held = len(self._finished)
        held = self._cap - self.held - held
        return held if held < room else room  # (min() of these costs more than this)

    def has_ready(self) -> bool:
        """Results (or failures) the node can take now."""
        if not self.ordered:
            return bool(self._finished)
        slots = self._slots
        if not slots:
            return False
        head = slots[0]
        return type(head) is not Pending or head.done

    @property
    def idle(self) -> bool:
        """Nothing running and nothing to pass on."""
        return not (self.running or self._slots or self._finished)

    # -- results ---------------------------------------------------------------------------
    def take_ready(self, out: list[Any]) -> None:
        """Move the results that are ready (in input order when `ordered`) into `out`; drops
        are counted and failures reported (raises NodeFailed for on_error "fail")."""
        if self.ordered:
            slots = self._slots
            while slots:
                head = slots[0]
                if type(head) is Pending and not head.done:
                    break
                self._pass(slots.popleft(), out)
        elif self._finished:
            batch, self._finished = self._finished, []
            for slot in batch:
                self._pass(slot, out)

    def _pass(self, head: Any, out: list[Any]) -> None:
        if type(head) is Pending:
            if head.error is not None:
                self.node.item_failed(head.item, head.error)
                return
            head = head.value
        if head is DROP:
            self.metrics.dropped += 1
        elif head is not FAILED:
            out.append(head)

    # -- starting items ----------------------------------------------------------------------
    def take_size(self, budget: int) -> int:
        """How many items to take now for `start` (0: the window is full)."""
        room = self.room()
        if room <= 0:
            return 0
        # eagerly a whole batch: items that finish in place never fill the window
        return min(budget, BATCH if self.in_place else room)

    def start(self, items: list[tuple[Any, ...]], out: list[Any]) -> list[tuple[Any, ...]]:
        """Start `items` while the window has room; returns those that could not start.

        Eagerly (the default): run them in place, one after the other, until one suspends; that
        one is handed to the spare task its first step ran as, and the rest go on in place.
        Results of items that finished go to `out` (or, ordered, behind one still running)."""
        if not self.in_place:
            return self._spawn_all(items)
        t0 = self._clock()  # 0.0: this turn's in-place items are not timed
        placed = suspended = pos = 0
        n = len(items)
        while pos < n:
            room = self.room()
            if room <= 0:
                break
            target: list[Any] | deque[Any]
            if self.ordered and self._slots:  # results wait behind a running item
                target = self._slots
                todo = items[pos:min(n, pos + room)]
            else:
                target = out
                todo = items[pos:] if pos else items
            run = self._run  # one Run serves every run until one is handed over
            run.items, run.values, run.skipped = todo, [], 0
            runner = self._runner
            if runner is None:  # a new runner starts with its first run
                runner = self._runner = run_items(run, self)
                send = None
            else:
                send = run
            host = self._spare
            if host is None or host.done():  # (done: an item cancelled it as its own task)
                host = self._new_host()
            try:
                first = first_step_as(self._loop, self._task, host, runner, send)
            except BaseException as exc:
                self._runner = None  # it ended with what it raised
                if isinstance(exc, NodeFailed):  # what finished before the failing item leaves
                    target.extend(run.values)
                raise
            values = run.values
            target.extend(values)
            done = len(values) + run.skipped  # finished in place
            placed += done
            pos += done
            if first is not BETWEEN:
                run.detached = True
                self._run = Run([])  # that one stays with the runner
                if run.items is items:
                    items = items[:]  # the runner's list is emptied next; keep the batch
                run.items.clear()  # the runner ends after the item that suspended
                self._runner = None  # it now runs that item, as the item's task
                suspended += 1
                slot = self._hand_over(items[pos], Resumed(runner, first))
                pos += 1
                if self.ordered:
                    self._slots.append(slot)
        if placed and t0:
            m = self.metrics
            m.lat_sum += time.perf_counter() - t0
            m.lat_n += placed
        if placed < suspended:
            # Items that mostly suspend gain nothing from the eager first step and pay for
            # handing over to a task: start plain tasks, and try the eager way now and then.
            self.in_place, self._probe = False, _PROBE_TURNS
        return items[pos:]

    def _spawn_all(self, items: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        k = max(0, min(len(items), self.room()))
        for item in items[:k]:
            slot = self._spawn(item)
            if self.ordered:
                self._slots.append(slot)
        self._probe -= 1
        self.in_place = self._can_run_in_place and self._probe <= 0
        return items[k:]

    def _spawn(self, item: tuple[Any, ...]) -> Pending:
        """A task for `item`: a parked item task if there is one, else a new one."""
        slot = Pending(item, self._clock())
        self.running += 1
        if self._parked:
            fut, task = self._parked.pop()
            slot.task = task
            fut.set_result(slot)
            return slot
        task = self._loop.create_task(settle(self, slot))
        slot.task = task
        self._tasks.add(task)
        return slot

    def _clock(self) -> float:
        """A start time for the latency metric, of an item started in a task or of a turn's
        items run in place: one in _TIMED is timed (a clock read costs about as much as running
        a quick item), else 0.0."""
        ticks = self._ticks
        if ticks:
            self._ticks = ticks - 1
            return 0.0
        self._ticks = _TIMED - 1
        return time.perf_counter()

    def _new_host(self) -> asyncio.Task[None]:
        """A spare task for eager first steps to run as (a timeout the item enters binds to
        it, not to the node's task); one serves every step until an item suspends."""
        self._go = self._loop.create_future()
        self._spare_slot = Pending((), aw=IDLE)
        host = self._spare = self._loop.create_task(host_items(self, self._spare_slot, self._go))
        return host

    def _hand_over(self, item: tuple[Any, ...], resumed: Resumed) -> Pending:
        """Give the spare task the item that suspended in its first step."""
        host, slot, go = self._spare, self._spare_slot, self._go
        assert host is not None and slot is not None and go is not None
        slot.item, slot.aw, slot.task = item, resumed, host
        slot.start = self._clock()
        self._tasks.add(host)
        go.set_result(None)
        self._spare = self._spare_slot = self._go = None
        self.running += 1
        return slot

    def end_input(self) -> None:
        """The node's input is done: item tasks take no more, and parked ones end."""
        self._input_done = True
        parked, self._parked = self._parked, []
        for fut, task in parked:
            self._tasks.discard(task)
            fut.set_result(None)

    # -- the item tasks' side (items.ItemRunner) ------------------------------------------------
    def item_call(self, item: tuple[Any, ...]) -> Any:
        """The coroutine of one item, however it is called."""
        return self.fn(self.node, item)

    def failed(self, item: Any, exc: BaseException) -> None:
        self.node.item_failed(item, exc)

    def settled(self, slot: Pending, more: bool) -> Any:
        """`slot`'s item finished in its task (`more`: the task can run another). Like a worker
        of a pool, the task passes the ready results on when its own is the next one (else the
        node is woken to), then runs the next item itself when the inlet has one and the
        window has room (returned as its new slot); else it parks (PARK) while the input is
        not done and fewer than `concurrency` tasks exist, or ends (None)."""
        self.running -= 1
        if slot.start:
            m = self.metrics
            m.lat_sum += time.perf_counter() - slot.start
            m.lat_n += 1
        if self.ordered:
            slots = self._slots
            news = bool(slots) and slots[0] is slot  # else it waits behind a running item
        else:
            news = True  # the node has something new to take
            self._finished.append(slot)
        if news and more and not self._fail_fast:
            # passed on at once, as a pool's worker puts its result (not an item cancelled
            # with its task, nor a failure that fails the node: those are the node's turn's)
            news = not self.node.pass_ready()
        task = slot.task
        if more and not self._input_done and (slot.error is None or not self._fail_fast):
            if self.room() > 0:
                item = self._take_one()
                if item is not None:
                    nxt = Pending(item, self._clock(), task)
                    self.running += 1
                    if self.ordered:
                        self._slots.append(nxt)
                    if news:
                        self._wake()
                    return nxt
            self._wake()
            if task is not None and len(self._parked) + self.running < self.concurrency:
                return PARK
        else:
            self._wake()
        if task is not None:
            self._tasks.discard(task)
        return None

    async def parked(self, task: asyncio.Task[Any]) -> Pending | None:
        fut: asyncio.Future[Pending | None] = self._loop.create_future()
        entry = (fut, task)
        self._parked.append(entry)
        try:
            return await fut
        finally:
            if not fut.done():
                self._parked.remove(entry)

    async def stop(self) -> None:
        """Cancel every item task (the node ended or was cancelled) and wait for them."""
        tasks = list(self._tasks)
        if self._spare is not None:
            tasks.append(self._spare)
            self._spare = None
        self._parked.clear()
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)
