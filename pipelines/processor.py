"""Nodes: the run loop of a processor node and of an input (source) node.

A processor's loop, each turn: take the results that are ready (`_take_ready`), take new items
while its window has room (`_take_new`), pass the results on as one batch (`_emit`); it ends when
its input and its window are done. Items start *eagerly* (`_start`): their first step runs in
place, as the node's spare task (`hosting.py`), so a coroutine that finishes without suspending
never becomes a task, and one that suspends is handed over to the task it already ran as (at
most `concurrency` at a time, results in input order when `ordered`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from .channel import Channel, Waker
from .errors import ItemTimeout, ItemTooLarge, LimitExceeded, NodeFailed, PipelineError
from .hosting import Resumed, first_step_as
from .inlets import Inlet, MergeInlet, ZipInlet
from .items import DROP, FAILED, IDLE, NOTHING, Pending, Run, host_items, run_items, settle
from .metrics import NodeMetrics
from .report import ItemError
from .reprs import safe_repr, safe_str
from .sink import ResultSink
from .sizes import json_size, oversized, quick_bounds
from .spec import NodeProperties
from .work import WorkMeter

__all__ = ["DROP", "Processor", "InputProcessor", "OutputQueue", "MergeInlet", "ZipInlet"]

_MAX_KEPT_ERRORS = 20
#: Items a node takes from its inlet per turn at most (more when its concurrency is higher).
BATCH = 256


class _Detached(Exception):
    """Raised inside a node when every downstream node has ended: nothing it makes can be used."""


class Processor:
    """A node of the pipeline: runs its coroutine on every input item.

    The coroutine is called as ``await coro(self, q_elt, **args)``; ``self`` is this object, so
    ``self.name`` and ``self.env_vars`` (the caller's context) are at hand.
    """

    kind = "processor"
    #: Largest value (JSON bytes) this node passes on; bigger ones are item errors. None: no cap.
    max_item_bytes: int | None = None
    #: The pipeline's shared count of items taken by all nodes (None: no limit).
    work: WorkMeter | None = None

    def __init__(
        self,
        name: str,
        coro: Callable[..., Coroutine[Any, Any, Any]],
        *,
        args: dict[str, Any] | None = None,
        properties: NodeProperties | None = None,
        env_vars: dict[str, Any] | None = None,
        coro_name: str | None = None,
        on_item_error: Callable[[ItemError], None] | None = None,
    ) -> None:
        self._name = name
        self._uuid = str(uuid.uuid4())
        self._processor_coro = coro
        self.coro_name = coro_name or getattr(coro, "__qualname__", repr(coro))
        self.args = dict(args or {})
        self.properties = properties or NodeProperties()
        self.env_vars: dict[str, Any] = env_vars if env_vars is not None else {}
        self.metrics = NodeMetrics()
        self.first_errors: list[ItemError] = []
        self._on_item_error = on_item_error
        self.inlet: Inlet | None = None
        self.outlets: list[Channel] = []
        self.sink: ResultSink | None = None
        self._waker = Waker()
        self._tasks: set[asyncio.Task[Any]] = set()
        # the window: results in input order (ordered: values and Pending); items finished in
        # a task of their own are in `_finished` (unordered)
        self._slots: deque[Any] = deque()
        self._budget = 0  # items this turn may still take
        self._short = False  # the last take found fewer items than it asked for
        # the spare task the next eager first step runs as, its slot, and its go-ahead
        self._spare: asyncio.Task[Any] | None = None
        self._spare_slot: Pending | None = None
        self._go: asyncio.Future[None] | None = None
        self._eager = self._can_eager = True
        self._probe = 0
        self._guarded_items = False
        self._finished: list[Pending] = []
        self._inflight = 0
        # What the node is blocked on, for the plumber's stall watchdog: a future that only
        # another node can resolve, and the channels it waits for room in (None: for input).
        self.blocked: asyncio.Future[None] | None = None
        self.blocked_on: list[Channel] | None = None

    # -- the original's read-only surface ----------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def uuid(self) -> str:
        return self._uuid

    @property
    def processor_coro(self) -> Callable[..., Coroutine[Any, Any, Any]]:
        return self._processor_coro

    @property
    def waker(self) -> Waker:
        """Wakes this node: give it to each channel it reads from."""
        return self._waker

    @property
    def inflight(self) -> int:
        return self._inflight

    def unpaired(self) -> int:
        return self.inlet.unpaired() if self.inlet is not None else 0

    def queue_depth(self) -> int:
        return self.inlet.depth() if self.inlet is not None else 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} coro={self.coro_name}>"

    # -- errors ------------------------------------------------------------------------------
    def item_failed(self, item: Any, exc: BaseException) -> object:
        """Count, report and (unless the node fails the pipeline) skip one failed item."""
        m = self.metrics
        m.errors += 1
        err = ItemError(self._name, safe_repr(item, 200), type(exc).__name__, safe_str(exc, 500),
                        exc.code if isinstance(exc, ItemTooLarge) else "node_error")
        if len(self.first_errors) < _MAX_KEPT_ERRORS:
            self.first_errors.append(err)
        if self.properties.on_error == "fail":
            raise NodeFailed(
                f"node {self._name!r} failed on item {err.item}: {err.error_type}: {err.message}",
                node=self._name,
            ) from exc
        if self._on_item_error is not None:
            self._on_item_error(err)
        return FAILED

    # -- output --------------------------------------------------------------------------------
    async def _emit(self, values: list[Any]) -> None:
        """Pass `values` to every downstream node, each at its own pace (a full edge does not
        hold back the others), waiting until all have them."""
        if self.max_item_bytes is not None:
            bad = oversized(values, self.max_item_bytes)
            if bad:
                values = self.drop_oversized(values, bad)
                if not values:
                    return
        self.metrics.items_out += len(values)
        if self.sink is not None:  # an output node (it has no outlets)
            await self.sink.deliver(self._name, values)
            return
        outlets = self.outlets
        n = len(values)
        if len(outlets) == 1:
            ch = outlets[0]
            i = ch.offer(values)
            while i < n:
                await self._wait_for_room([ch])
                i = ch.offer(values, i)
            if ch.abandoned:
                raise _Detached
            return
        offsets = [0] * len(outlets)
        while True:
            waiting = []
            for j, ch in enumerate(outlets):
                if offsets[j] < n:
                    offsets[j] = ch.offer(values, offsets[j])
                    if offsets[j] < n:
                        waiting.append(ch)
            if not waiting:
                break
            await self._wait_for_room(waiting)
        if all(ch.abandoned for ch in outlets):
            raise _Detached

    def drop_oversized(self, values: list[Any], bad: list[int]) -> list[Any]:
        """`values` without the ones over `max_item_bytes`, each reported as an item error."""
        limit = self.max_item_bytes
        assert limit is not None
        for i in bad:
            size = json_size(values[i], limit)
            self.item_failed(
                f"<a {type(values[i]).__name__} result>",
                ItemTooLarge(f"result of more than {size - 1} bytes is over the limit of "
                             f"{limit} bytes per item", node=self._name),
            )
        skip = set(bad)
        return [v for i, v in enumerate(values) if i not in skip]

    async def _wait_for_room(self, channels: list[Channel]) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for ch in channels:
            ch.add_putter(fut)
        self.blocked, self.blocked_on = fut, channels
        try:
            await fut
        finally:
            self.blocked = self.blocked_on = None
            for ch in channels:
                ch.remove_putter(fut)

    async def _wait_for_input(self) -> None:
        fut = self._waker.arm()
        if not self._inflight:
            self.blocked = fut
        try:
            await fut
        finally:
            self._waker.disarm()
            self.blocked = None

    def _close_outputs(self) -> None:
        for ch in self.outlets:
            ch.close()
        if self.sink is not None:
            self.sink.close()

    # -- items ---------------------------------------------------------------------------------
    async def guarded(self, item: tuple[Any, ...]) -> Any:
        """One item with retries and a per-item timeout (the slower, careful path)."""
        props = self.properties
        attempt = 0
        while True:
            try:
                if props.timeout is None:
                    return await self._processor_coro(self, item, **self.args)
                try:
                    async with asyncio.timeout(props.timeout) as deadline:
                        return await self._processor_coro(self, item, **self.args)
                except TimeoutError:
                    if not deadline.expired():
                        raise  # a timeout of the item's own (it ran its own asyncio.timeout)
                    raise ItemTimeout(f"no result within {props.timeout} s",
                                      node=self._name) from None
            except asyncio.CancelledError:
                raise
            except Exception:
                if props.on_error != "retry" or attempt >= props.retries:
                    raise
                attempt += 1
                self.metrics.retries += 1
                await asyncio.sleep(props.backoff * 2 ** (attempt - 1))

    def settled(self, slot: Pending) -> None:
        if slot.task is not None:
            self._tasks.discard(slot.task)
        self._inflight -= 1
        m = self.metrics
        m.lat_sum += time.perf_counter() - slot.start
        m.lat_n += 1
        if not self.properties.ordered:
            self._finished.append(slot)
        self._waker()

    def _outcome(self, slot: Pending) -> Any:
        if slot.error is not None:
            return self.item_failed(slot.item, slot.error)
        return slot.value

    def call(self, item: tuple[Any, ...]) -> Coroutine[Any, Any, Any]:
        props = self.properties
        if props.on_error == "retry" or props.timeout is not None:
            return self.guarded(item)
        return self._processor_coro(self, item, **self.args)

    def _spawn(self, item: tuple[Any, ...], aw: Any) -> Pending:
        slot = Pending(item, aw)
        task = asyncio.get_running_loop().create_task(settle(self, slot))
        slot.task = task
        self._tasks.add(task)
        self._inflight += 1
        return slot

    # -- the run loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Process items until the input ends and every item has left, then close the outputs."""
        assert self.inlet is not None, "a processor needs an inlet (built by the Plumber)"
        props = self.properties
        self._loop_obj = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None
        self._me = me
        self._guarded_items = props.on_error == "retry" or props.timeout is not None
        # asyncio.timeout() of the node's `timeout` acts on the current task: such items own
        # their task from the start
        self._can_eager = self._eager = props.timeout is None
        m = self.metrics
        m.status = "running"
        m.started = time.monotonic()
        try:
            await self._loop(self.inlet)
        except _Detached:
            # Every downstream node ended (a zip met its shortest input): stop taking input too.
            m.dropped += self.inlet.detach()
            self._close_outputs()
        except asyncio.CancelledError:
            m.status = "cancelled"
            raise
        except BaseException:
            m.status = "failed"
            raise
        finally:
            await self._stop_tasks()
        m.status = "done"
        m.ended = time.monotonic()

    async def _stop_tasks(self) -> None:
        tasks = list(self._tasks)
        if self._spare is not None:
            tasks.append(self._spare)
            self._spare = None
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _loop(self, inlet: Inlet) -> None:
        """Take ready results, take new items, pass results on; end when the input and the
        window are done."""
        input_done = False
        while True:
            out: list[Any] = []
            failure: NodeFailed | None = None
            started = 0
            try:
                self._take_ready(out)
                started, input_done = self._take_new(inlet, out, input_done)
            except NodeFailed as exc:
                failure = exc  # on_error "fail": results finished before the failing item leave
            if out:
                await self._emit(out)  # may wait: backpressure
            if failure is not None:
                raise failure
            if out or started:
                continue
            if input_done and not self._slots and not self._inflight and not self._finished:
                self._close_outputs()
                return
            await self._wait_for_input()

    def _take_ready(self, out: list[Any]) -> None:
        """Move the results that are ready (in input order when `ordered`) into `out`."""
        m = self.metrics
        if self.properties.ordered:
            slots = self._slots
            while slots:
                head = slots[0]
                if type(head) is Pending:
                    if not head.done:
                        break
                    value = self._outcome(head)
                else:
                    value = head
                slots.popleft()
                if value is not FAILED and value is not DROP:
                    out.append(value)
                elif value is DROP:
                    m.dropped += 1
        elif self._finished:
            batch, self._finished[:] = self._finished[:], []
            for slot in batch:
                value = self._outcome(slot)
                if value is not FAILED and value is not DROP:
                    out.append(value)
                elif value is DROP:
                    m.dropped += 1

    def _room(self) -> int:
        """Items the window can still start: `concurrency` less those running (and, when
        `ordered`, less the results waiting behind one still running)."""
        used = len(self._slots) if self.properties.ordered else self._inflight
        return self.properties.concurrency - used

    def _take_new(self, inlet: Inlet, out: list[Any], input_done: bool) -> tuple[int, bool]:
        """Start new items while the window has room, at most a batch per turn; returns
        (items started, input done)."""
        m = self.metrics
        before = m.items_in
        self._budget = max(self.properties.concurrency, BATCH)
        while not input_done:
            items = self._refill()
            if not items:
                if inlet.exhausted and self._room() > 0 and self._budget > 0:
                    input_done = True
                    inlet.finish()
                break
            self._start(items, out)
            if self._short:
                break  # the inlet had no more just now
        return m.items_in - before, input_done

    def _refill(self) -> list[tuple[Any, ...]]:
        """Items to start: eagerly, a whole batch (items that finish in place never fill the
        window; what cannot start is put back), else as many as the window has room for."""
        k = min(self._budget, BATCH if self._eager else self._room())
        if k <= 0 or self._room() <= 0:
            self._short = False
            return []
        assert self.inlet is not None
        items = self.inlet.take(k)
        n = len(items)
        self._short = n < k
        if n:
            self._budget -= n
            self.metrics.items_in += n
            work = self.work
            if work is not None:
                work.items += n
                if work.items > work.limit:
                    raise work.exceeded(self._name)
        return items

    def _put_back(self, items: list[tuple[Any, ...]]) -> None:
        """Return items taken this turn that the window has no room for to the inlet."""
        assert self.inlet is not None
        n = len(items)
        self.inlet.unget(items)
        self._budget += n
        self.metrics.items_in -= n
        if self.work is not None:
            self.work.items -= n
        self._short = True

    def _start(self, items: list[tuple[Any, ...]], out: list[Any]) -> None:
        """Start `items` while the window has room; put the rest back.

        Eagerly (the default): run them in place, one after the other, until one suspends; that
        one is handed to the spare task its first step ran as, and the rest go on in place.
        While every item finishes in place the run takes more from the inlet itself. Results of
        items that finished go to `out` (or, ordered, behind one still running)."""
        if not self._eager:
            k = max(0, min(len(items), self._room()))
            for item in items[:k]:
                slot = self._spawn(item, None)
                if self.properties.ordered:
                    self._slots.append(slot)
            if k < len(items):
                self._put_back(items[k:])
            self._probe -= 1
            self._eager = self._can_eager and self._probe <= 0
            return
        ordered, slots = self.properties.ordered, self._slots
        perf = time.perf_counter
        t0 = perf()
        in_place = suspended = pos = 0
        while pos < len(items):
            room = self._room()
            if room <= 0:
                self._put_back(items[pos:])
                break
            if ordered and slots:
                # results that finish behind a running item wait in the window too
                run = Run(items, pos, min(len(items), pos + room))
            else:
                run = Run(items, pos, len(items), self._refill)
            coro: Any = run_items(run, self, self._processor_coro, self.args, self._guarded_items)
            try:
                first = first_step_as(self._loop_obj, self._me, self._host(items[pos]), coro)
            except StopIteration:
                first = NOTHING
            except NodeFailed:  # what finished before the failing item leaves
                (slots if ordered and slots else out).extend(run.values)
                raise
            else:
                run.detached = True
            in_place += run.in_place
            (slots if ordered and slots else out).extend(run.values)
            items, pos = run.items, run.i
            if first is not NOTHING:
                suspended += 1
                slot = self._hand_over(items[pos - 1], Resumed(coro, first))
                if ordered:
                    slots.append(slot)
        if in_place:
            m = self.metrics
            m.lat_sum += perf() - t0
            m.lat_n += in_place
        if in_place < suspended:
            # Items that mostly suspend gain nothing from the eager first step and pay for
            # handing over to a task: create plain tasks, and try the eager way now and then.
            self._eager, self._probe = False, 32

    def _host(self, item: tuple[Any, ...]) -> asyncio.Task[None]:
        """The spare task an eager first step runs as (a timeout the item enters binds to it,
        not to this node's task); one serves every step until an item suspends."""
        host = self._spare
        if host is None or host.done():
            self._go = self._loop_obj.create_future()
            self._spare_slot = Pending(item, IDLE)
            host = self._spare = self._loop_obj.create_task(
                host_items(self, self._spare_slot, self._go))
        return host

    def _hand_over(self, item: tuple[Any, ...], resumed: Resumed) -> Pending:
        """Give the spare task the item that suspended in its first step."""
        host, slot, go = self._spare, self._spare_slot, self._go
        assert host is not None and slot is not None and go is not None
        slot.item, slot.aw, slot.task = item, resumed, host
        slot.start = time.perf_counter()
        self._tasks.add(host)
        go.set_result(None)
        self._spare = self._spare_slot = self._go = None
        self._inflight += 1
        return slot


class OutputQueue:
    """What a source coroutine gets as its output queue: the familiar `await put(item)`, bounded,
    fanned out to every downstream node."""

    __slots__ = ("_node", "_outlets", "_limit", "_bounds")

    def __init__(self, node: InputProcessor, limit: int | None) -> None:
        self._node = node
        self._outlets = node.outlets
        self._limit = limit
        cap = node.max_item_bytes
        self._bounds = quick_bounds(cap) if cap is not None else None

    def _fits(self, item: Any) -> bool:
        """True if `item` is within the node's max_item_bytes; if not, it is reported."""
        assert self._bounds is not None
        text_max, low, high = self._bounds
        t = type(item)
        if (t is int and low < item < high) or (t is str and len(item) <= text_max) \
                or item is None or t is float or t is bool:
            return True
        if oversized([item], self._node.max_item_bytes or 0):
            self._node.drop_oversized([item], [0])
            return False
        return True

    async def put(self, item: Any) -> None:
        """Send one item downstream, waiting while a downstream queue is full."""
        node = self._node
        m = node.metrics
        if self._limit is not None and m.items_out >= self._limit:
            raise LimitExceeded(
                f"node {node.name!r}: more than {self._limit} items from one source (limit max_source_items)",
                node=node.name,
            )
        if self._bounds is not None and type(item) is not int and not self._fits(item):
            # ints are left to the first node that takes them (its output is checked): sources
            # mostly emit small ints, and this check is on every put
            return
        outlets = self._outlets
        if len(outlets) == 1 and outlets[0].offer_one(item):
            m.items_out += 1
            return
        await node._emit([item])  # waits for room; a consumer gone is handled there

    def put_nowait(self, item: Any) -> None:
        """Send one item now, or raise asyncio.QueueFull when a downstream queue is full."""
        if self.full():
            raise asyncio.QueueFull
        node = self._node
        if self._limit is not None and node.metrics.items_out >= self._limit:
            raise LimitExceeded(
                f"node {node.name!r}: more than {self._limit} items from one source (limit max_source_items)",
                node=node.name,
            )
        if self._bounds is not None and not self._fits(item):
            return
        node.metrics.items_out += 1
        one = [item]
        for ch in self._outlets:
            ch.offer(one)  # room was checked (full()); an abandoned channel counts it dropped
        if node.sink is not None:
            node.sink.deliver_nowait(node.name, [item])

    async def put_many(self, items: list[Any]) -> None:
        """Send a list of items at once (the fast way for sources that have them ready)."""
        node = self._node
        if self._limit is not None and node.metrics.items_out + len(items) > self._limit:
            raise LimitExceeded(
                f"node {node.name!r}: more than {self._limit} items from one source (limit max_source_items)",
                node=node.name,
            )
        await node._emit(list(items))

    def full(self) -> bool:
        sink = self._node.sink
        return any(ch.full for ch in self._outlets) or (sink is not None and sink.full())

    def qsize(self) -> int:
        return max((len(ch.buf) for ch in self._outlets), default=0)

    def empty(self) -> bool:
        return self.qsize() == 0

    @property
    def maxsize(self) -> int:
        return min((ch.maxsize for ch in self._outlets), default=0)


class InputProcessor(Processor):
    """A source node: its coroutine gets an output queue, puts items in it, and returns at the end.

    Called as ``await coro(self, output_q, **args)``.
    """

    kind = "source"
    max_items: int | None = None

    def _source_failed(self, exc: BaseException) -> None:
        """A source that raises ends its stream; with on_error "fail" it stops the pipeline."""
        try:
            self.item_failed(f"<source, after {self.metrics.items_out} items>", exc)
        except NodeFailed:
            self.metrics.status = "failed"
            raise

    async def run(self) -> None:
        m = self.metrics
        m.status = "running"
        m.started = time.monotonic()
        queue = OutputQueue(self, self.max_items)
        try:
            await self._processor_coro(self, queue, **self.args)
        except _Detached:
            pass  # every downstream node ended: the source has nobody to feed
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                m.status = "cancelled"
                raise
            # the source raised CancelledError of its own: its stream ends with an error
            self._source_failed(exc)
        except PipelineError:
            m.status = "failed"
            raise
        except Exception as exc:
            self._source_failed(exc)
        m.items_in = m.items_out
        self._close_outputs()
        m.status = "done"
        m.ended = time.monotonic()
