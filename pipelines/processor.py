"""Nodes: the run loop of a processor node and of an input (source) node.

A processor's turn (`Processor.turn`, which never waits): take the results that are ready from
its window, take new items from its inlet into the window while it has room, pass the results
on as one batch, and say what to wait for next (input, or room on a full outlet); it ends when
its input and its window are done. An item task that finishes the next result passes the ready
ones on itself (`pass_ready`) unless results already wait for room. A node's own task loops
over its turns (`process`), or the pipeline's shared task takes the turns of several nodes
(group.py). What runs the items (eagerly, in tasks, in order) is the node's `Window`
(window.py); the node owns its input and output sides and its errors.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .channel import Channel, Waker
from .driven import wait_for_room_in_step
from .errors import ItemTimeout, ItemTooLarge, LimitExceeded, NodeFailed, PipelineError
from .inlets import Inlet, MergeInlet, ZipInlet
from .items import DROP, FAILED
from .metrics import NodeMetrics
from .report import ItemError
from .reprs import safe_repr, safe_str
from .sink import ResultSink
from .sizes import json_size, oversized, quick_bounds
from .spec import NodeProperties
from .window import BATCH, Window
from .work import WorkMeter

__all__ = ["BATCH", "DROP", "Processor", "InputProcessor", "OutputQueue", "MergeInlet",
           "ZipInlet", "Detached", "MORE", "WAIT_INPUT", "WAIT_ROOM", "DONE"]

_MAX_KEPT_ERRORS = 20

# What a node's turn (`Processor.turn`) leaves it doing: turn again now, wait until its waker is
# called, wait for room on its full outlets (`Processor.full_outlets`), or ended.
MORE, WAIT_INPUT, WAIT_ROOM, DONE = 0, 1, 2, 3


class Detached(Exception):
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
        waker: Waker | None = None,
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
        #: what wakes the node (nodes that share a task share one: see group.py)
        self._waker = waker if waker is not None else Waker()
        #: the items running and the results not passed on (made again by `run`)
        self.window = Window(self, self.properties, self._waker)
        # What the node is blocked on, for the plumber's stall watchdog: a future that only
        # another node can resolve, and the channels it waits for room in (None: for input).
        self.blocked: asyncio.Future[None] | None = None
        self.blocked_on: list[Channel] | None = None
        #: the event loop the node runs in (set when it starts)
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        # A turn's state between turns: the input ended; results that did not fit (`_pend`,
        # what each of `_pend_to` took of them in `_pend_at`); the failure to raise once they
        # are passed on.
        self._input_done = False
        self._pend: list[Any] | None = None
        self._pend_to: list[Channel] = []
        self._pend_at: list[int] = []
        self._fail_after: NodeFailed | None = None
        # what passing results on from an item task raised (`pass_ready`): the next turn raises it
        self._raise_next: Exception | None = None

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
        """Items running now."""
        return self.window.running

    def unpaired(self) -> int:
        return self.inlet.unpaired() if self.inlet is not None else 0

    def queue_depth(self) -> int:
        return self.inlet.depth() if self.inlet is not None else 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} coro={self.coro_name}>"

    # -- errors ------------------------------------------------------------------------------
    def item_failed(self, item: Any, exc: BaseException) -> object:
        """Count, report and (unless the node fails the pipeline) skip one failed item."""
        return self.report_error(
            ItemError(self._name, safe_repr(item, 200), type(exc).__name__, safe_str(exc, 500),
                      exc.code if isinstance(exc, ItemTooLarge) else "node_error"), exc)

    def report_error(self, err: ItemError, cause: BaseException | None = None) -> object:
        """Count and report one item error: FAILED (the item is skipped), or raises NodeFailed
        when the node's `on_error` is "fail"."""
        self.metrics.errors += 1
        if len(self.first_errors) < _MAX_KEPT_ERRORS:
            self.first_errors.append(err)
        if self.properties.on_error == "fail":
            raise NodeFailed(
                f"node {self._name!r} failed on item {err.item}: {err.error_type}: {err.message}",
                node=self._name,
            ) from cause
        if self._on_item_error is not None:
            self._on_item_error(err)
        return FAILED

    # -- one item ------------------------------------------------------------------------------
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

    def call(self, item: tuple[Any, ...]) -> Coroutine[Any, Any, Any]:
        """The coroutine of one item, guarded when the node's properties ask for it."""
        return self.window.item_call(item)  # type: ignore[no-any-return]

    # -- output --------------------------------------------------------------------------------
    async def emit(self, values: list[Any]) -> None:
        """Pass `values` to every downstream node, each at its own pace (a full edge does not
        hold back the others), waiting until all have them."""
        if not self.offer_out(values):
            while not self.place_pending():
                await self.wait_for_room(self.full_outlets())

    def offer_out(self, values: list[Any]) -> bool:
        """Pass on what fits now: True when every downstream node (or the result sink) has all
        of `values`; else the rest is pending (`place_pending` places more of it, and
        `full_outlets` says what it waits for). Raises Detached once every downstream node
        has gone."""
        if self.max_item_bytes is not None:
            bad = oversized(values, self.max_item_bytes)
            if bad:
                values = self.drop_oversized(values, bad)
                if not values:
                    return True
        self.metrics.items_out += len(values)
        outlets = self.outlets
        if not outlets:
            if self.sink is None:
                return True
            # an output node: its one outlet is the result sink's channel (None: only counted)
            pairs = self.sink.accept(self._name, values)
            if pairs is None:
                return True
            ch = self.sink.channel
            assert ch is not None
            i = ch.offer(pairs)
            if i < len(pairs):
                self._pend, self._pend_to, self._pend_at = pairs, [ch], [i]
                return False
            return True
        n = len(values)
        if len(outlets) == 1:
            ch = outlets[0]
            i = ch.offer(values)
            if i < n:
                self._pend, self._pend_to, self._pend_at = values, outlets, [i]
                return False
            if ch.abandoned:
                raise Detached
            return True
        offsets = [ch.offer(values) for ch in outlets]
        if any(i < n for i in offsets):
            self._pend, self._pend_to, self._pend_at = values, outlets, offsets
            return False
        if all(ch.abandoned for ch in outlets):
            raise Detached
        return True

    def pass_ready(self) -> bool:
        """Pass on the results the window has ready, from the item task that finished the next
        of them (as a worker of a pool puts its own result): downstream item tasks that finish
        in the same loop iteration find them. False when the node's turn must do it (the caller
        wakes the node): results already wait for room, some did not fit now, or passing them
        on raised (Detached, or what an error callback raised: the next turn raises it)."""
        if self._pend is not None or self._raise_next is not None:
            return False
        out: list[Any] = []
        try:
            self.window.take_ready(out)
            if out and not self.offer_out(out):
                self.window.held = len(out)  # (as the turn does: pending, the turn places them)
                return False
        except Exception as exc:  # noqa: BLE001 - raised by the node's next turn
            self._raise_next = exc
            return False
        return True

    def place_pending(self) -> bool:
        """Offer the pending rest again; True once every outlet has it (and nothing is pending)."""
        values, chans, offsets = self._pend, self._pend_to, self._pend_at
        assert values is not None
        n = len(values)
        left = False
        for j, ch in enumerate(chans):
            if offsets[j] < n:
                offsets[j] = i = ch.offer(values, offsets[j])
                left = left or i < n
        if left:
            return False
        self._pend = None
        if chans is self.outlets and all(ch.abandoned for ch in chans):
            raise Detached  # every downstream node is gone
        return True

    def full_outlets(self) -> list[Channel]:
        """The outlets the pending rest waits for room on."""
        values, offsets = self._pend, self._pend_at
        n = len(values) if values is not None else 0
        return [ch for ch, i in zip(self._pend_to, offsets, strict=True) if i < n]

    async def wait_for_room(self, channels: list[Channel]) -> None:
        """Wait until one of `channels` (full) has room again, or its consumer is gone (the
        stall watchdog sees what the node waits for in `blocked` and `blocked_on`)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        for ch in channels:
            ch.add_putter(fut)
        self.block(fut, channels)
        try:
            await fut
        finally:
            self.blocked = self.blocked_on = None
            for ch in channels:
                ch.remove_putter(fut)

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

    def wait_for_input(self) -> asyncio.Future[None]:
        """What to await until the waker is called: items arrived, an input ended, an item
        finished. (The waker lets go of it when it calls; while no item is in flight it is the
        node's `blocked` future, and once done it blocks nothing.)"""
        fut = self._waker.arm(self._loop)
        self.block(fut)
        return fut

    def block(self, fut: asyncio.Future[None], room: list[Channel] | None = None) -> None:
        """Show the stall watchdog that the node waits on `fut`, which only another node can
        resolve: for input (`room` None) while no item is in flight, or for room on the full
        edges `room`. Room in the result sink is not shown (the reader gives it, not a node)."""
        if room is None:
            if not self.inflight:
                self.blocked = fut
        elif self.sink is None:
            self.blocked, self.blocked_on = fut, room

    def close_outputs(self) -> None:
        """This node sends nothing more."""
        for ch in self.outlets:
            ch.close()
        if self.sink is not None:
            self.sink.close()

    # -- input ---------------------------------------------------------------------------------
    def take_one(self) -> tuple[Any, ...] | None:
        """The next item for an item task that finished (see `Window.settled`), or None:
        none now, or the work budget is spent (the node's own turn reports that)."""
        work = self.work
        if work is not None and work.items >= work.limit:
            return None
        item = self.inlet.take_one()  # type: ignore[union-attr]  # (set before the node runs)
        if item is not None:
            self.metrics.items_in += 1
            if work is not None:
                work.items += 1
        return item

    def _take_new(self, inlet: Inlet, out: list[Any]) -> bool:
        """Start new items while the window has room, at most a batch per turn; True when the
        input is done (and the inlet finished)."""
        window, m, work = self.window, self.metrics, self.work
        budget = window.per_turn
        while budget > 0:
            k = window.take_size(budget)
            items = inlet.take(k) if k > 0 else []
            if not items:
                if inlet.exhausted:  # nothing more will come (whatever room the window has)
                    inlet.finish()
                    window.end_input()
                    return True
                return False
            n = len(items)
            m.items_in += n
            if work is not None:  # the pipeline's budget of items taken by all nodes
                work.items += n
                if work.items > work.limit:
                    raise work.exceeded(self._name)
            budget -= n
            left = window.start(items, out)
            if left:  # the window is full: back to the inlet, where they were
                inlet.unget(left)
                self.metrics.items_in -= len(left)
                if self.work is not None:
                    self.work.items -= len(left)
                return False
            if n < k:
                return False  # the inlet had no more just now
        return False

    # -- the run loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Process items until the input ends and every item has left, then close the outputs."""
        assert self.inlet is not None, "a processor needs an inlet (built by the Plumber)"
        self.begin()
        try:
            await self.process(self.inlet)
        except Detached:
            self.detach()
        except BaseException as exc:
            self.stopped(exc)
            raise
        finally:
            await self.window.stop()
        self.ended()

    def begin(self) -> None:
        """Called by the task that runs the node's turns, before the first one."""
        self._loop = asyncio.get_running_loop()
        self.window = Window(self, self.properties, self._waker)
        self.window.bind()
        self._input_done = False
        self._pend = None
        self._fail_after = None
        self._raise_next = None
        m = self.metrics
        m.status = "running"
        m.started = time.monotonic()

    def detach(self) -> None:
        """Every downstream node ended (a zip met its shortest input): stop taking input too."""
        assert self.inlet is not None
        self.metrics.dropped += self.inlet.detach()
        self.close_outputs()

    def stopped(self, exc: BaseException) -> None:
        """The node's run ends with `exc`: cancelled, or failed."""
        self.metrics.status = "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed"

    def ended(self) -> None:
        m = self.metrics
        m.status = "done"
        m.ended = time.monotonic()

    async def process(self, inlet: Inlet) -> None:
        """The node's loop: a turn, then wait for what the turn says (a node of another kind,
        such as one whose items run on a worker pool, overrides this)."""
        while True:
            state = self.turn()
            if state == WAIT_INPUT:
                await self.wait_for_input()
            elif state == WAIT_ROOM:
                await self.wait_for_room(self.full_outlets())
            elif state == DONE:
                return

    def turn(self) -> int:
        """One turn, which never waits: take ready results, take new items, pass results on.
        Returns what the node does next: MORE (turn again), WAIT_INPUT, WAIT_ROOM (on
        `full_outlets()`) or DONE (input and window done, outputs closed). Raises Detached
        when every downstream node has gone, NodeFailed, or what a bug raises."""
        window = self.window
        if self._raise_next is not None:  # (what passing results on from an item task raised)
            exc, self._raise_next = self._raise_next, None
            raise exc
        if self._pend is not None:  # results that did not fit last turn go first
            if not self.place_pending():
                return WAIT_ROOM
            window.held = 0
            held = self._fail_after
            if held is not None:
                self._fail_after = None
                raise held
        inlet = self.inlet
        assert inlet is not None
        out: list[Any] = []
        failure: NodeFailed | None = None
        try:
            window.take_ready(out)
            if not self._input_done:
                self._input_done = self._take_new(inlet, out)
        except NodeFailed as exc:
            failure = exc  # on_error "fail": results finished before the failing item leave
        if out and not self.offer_out(out):  # a downstream edge is full (backpressure)
            window.held = len(out)  # (they count against the window's cap on held results)
            self._fail_after = failure
            return WAIT_ROOM
        if failure is not None:
            raise failure
        if self._input_done:
            if window.idle:
                self.close_outputs()
                return DONE
            return MORE if window.has_ready() else WAIT_INPUT  # items still run
        if window.has_ready():
            return MORE
        if inlet.ready():
            return WAIT_INPUT if window.room() <= 0 else MORE
        return MORE if inlet.exhausted else WAIT_INPUT  # (exhausted: the next turn ends it)


class OutputQueue:
    """What a source coroutine gets as its output queue: the familiar `await put(item)`, bounded,
    fanned out to every downstream node."""

    __slots__ = ("_node", "_metrics", "_outlets", "_one", "_limit", "_cap", "_bounds", "_done",
                 "_send")

    def __init__(self, node: InputProcessor, limit: int | None) -> None:
        self._node = node
        self._metrics = node.metrics
        self._outlets = node.outlets
        #: the one channel a single-outlet source feeds (None: several outlets, or the sink)
        self._one = node.outlets[0] if len(node.outlets) == 1 else None
        self._limit = limit
        self._cap = limit if limit is not None else sys.maxsize
        #: what a put that passed its item on at once returns: a future already done
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._done.set_result(None)
        cap = node.max_item_bytes
        self._bounds = quick_bounds(cap) if cap is not None else None
        #: puts one item into the one channel a single-outlet source feeds (the channel's rule)
        self._send = (self._one.sender(self._metrics, self._done, self._put_when_room)
                      if self._one is not None else None)

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

    @staticmethod
    def make(node: InputProcessor, limit: int | None) -> OutputQueue:
        """The queue for `node`'s coroutine: the plain one for the usual source (one downstream
        node, no cap on its items or their size), else the one that checks them."""
        if len(node.outlets) == 1 and limit is None and node.max_item_bytes is None:
            return _PlainOutputQueue(node, limit)
        return OutputQueue(node, limit)

    def put(self, item: Any) -> Awaitable[None]:
        """Send one item downstream: ``await queue.put(item)``, which waits while a downstream
        queue is full. (A plain method returning an awaitable: with room downstream the item is
        passed on at once and the awaitable is already done, so a put costs no coroutine.)"""
        m = self._metrics
        if m.items_out >= self._cap:
            raise self._over_limit()
        if type(item) is not int and self._bounds is not None and not self._fits(item):
            # ints are left to the first node that takes them (its output is checked): sources
            # mostly emit small ints, and this check is on every put
            return self._done
        send = self._send
        if send is not None:
            return send(item)
        return self._node.emit([item])  # waits for room; a consumer gone is handled there

    async def _put_when_room(self, item: Any) -> None:
        """The one edge is full: wait for room, then put (its consumer gone: the node's `emit`
        drops the item and ends the source)."""
        ch, node = self._one, self._node
        assert ch is not None
        while not ch.abandoned:
            if node.driven:  # the shared task runs this source: back to it until there is room
                await wait_for_room_in_step()
            else:
                await node.wait_for_room(self._outlets)
            if not (ch.abandoned or ch.full):
                ch.offer([item])
                self._metrics.items_out += 1
                return
        await node.emit([item])

    def _over_limit(self) -> LimitExceeded:
        return LimitExceeded(f"node {self._node.name!r}: more than {self._limit} items from one "
                             "source (limit max_source_items)", node=self._node.name)

    def put_nowait(self, item: Any) -> None:
        """Send one item now, or raise asyncio.QueueFull when a downstream queue is full."""
        if self.full():
            raise asyncio.QueueFull
        node = self._node
        if self._limit is not None and node.metrics.items_out >= self._limit:
            raise self._over_limit()
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
            raise self._over_limit()
        await node.emit(list(items))

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


class _PlainOutputQueue(OutputQueue):
    """The queue of the usual source: one downstream node, no cap on its items or their size;
    a put checks nothing but room, so `put` is the channel's own sender (one call per item)."""

    __slots__ = ("put",)

    def __init__(self, node: InputProcessor, limit: int | None) -> None:
        super().__init__(node, limit)
        assert self._send is not None
        self.put = self._send  # type: ignore[assignment,method-assign]


class InputProcessor(Processor):
    """A source node: its coroutine gets an output queue, puts items in it, and returns at the end.

    Called as ``await coro(self, output_q, **args)``.
    """

    kind = "source"
    max_items: int | None = None
    #: True while the pipeline's shared task runs this source's steps (see driven.py)
    driven = False

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
        self._loop = asyncio.get_running_loop()
        queue = OutputQueue.make(self, self.max_items)
        try:
            await self._processor_coro(self, queue, **self.args)
        except Detached:
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
        self.close_outputs()
        m.status = "done"
        m.ended = time.monotonic()
