"""A source whose steps the shared task runs: no task wake-up and no event-loop iteration
between a source and the nodes that take its items.

A source's coroutine mostly puts items and waits for room on its edge. When the node it feeds
takes its turns in the pipeline's shared task (group.py), that task runs the source's steps
too, between its nodes' turns: a put that finds the edge full suspends the source back to the
shared task (it yields `FULL`), and the shared task runs it again once its nodes have taken
items. A batch then costs no wake-up of the source's task, nor of the shared one.

The source still has a task of its own (the host), created with the others: during a step it is
what `asyncio.current_task()` returns (a timeout or task group the source enters binds to it),
its context is the step's context, and it takes the source over for good -- the source then runs
as a task of its own, as without the shared task -- as soon as the source awaits anything other
than room (I/O, a sleep, a lock), when it is cancelled (the pipeline stops, or a timeout the
source entered expires), or when it next fills its edge after the node it feeds has started
running its items in tasks (items that wait on I/O or timers: their tasks take the next items
themselves, so the shared task gains the source nothing; such pipelines measured faster with
the source in its own task, see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Coroutine, Generator
from typing import Any, Final, Protocol

from .channel import Channel
from .hosting import Resumed, first_step_as
from .metrics import NodeMetrics

__all__ = ["FULL", "DrivenSource", "SourceNode", "wait_for_room_in_step"]


class SourceNode(Protocol):
    """What driving a source needs of its node (processor.InputProcessor)."""

    outlets: list[Channel]
    metrics: NodeMetrics
    blocked: asyncio.Future[None] | None
    blocked_on: list[Channel] | None
    #: True while the shared task runs the source's steps: a put that finds the edge full
    #: then suspends the source back to it (`wait_for_room_in_step`)
    driven: bool

    @property
    def name(self) -> str:
        """The node's name."""

    def run(self) -> Coroutine[Any, Any, None]:
        """The source's whole run."""

    def block(self, fut: asyncio.Future[None], room: list[Channel] | None = None) -> None:
        """Show the stall watchdog what the source waits on."""


class ItemsWindow(Protocol):
    """What driving a source needs of the window of the node it feeds (window.Window)."""

    #: True while the window runs items in place (they mostly finish without waiting)
    in_place: bool


class SourceConsumer(Protocol):
    """What driving a source needs of the node it feeds (processor.Processor)."""

    @property
    def window(self) -> ItemsWindow:
        """The node's window of running items."""


#: What a driven source yields to the shared task when its edge is full.
FULL: Final = object()


@types.coroutine
def wait_for_room_in_step() -> Generator[Any, None, None]:
    """Suspend a driven source back to the shared task until its edge has room."""
    yield FULL


class DrivenSource:
    """One source node whose steps the shared task runs while it only waits for room on its one
    edge (`channel`); it has a task of its own too (`start`)."""

    def __init__(self, node: SourceNode, consumer: SourceConsumer) -> None:
        assert len(node.outlets) == 1, "a driven source feeds one edge"
        self.node = node
        self.consumer = consumer  # the node its edge feeds
        self.channel: Channel = node.outlets[0]
        #: the source's context (made when its task is): its steps run in it here, and its
        #: task runs in it after
        self.context: contextvars.Context | None = None
        self._task: asyncio.Task[None] | None = None
        self._coro: Any = None  # the source's run, once started here
        self._first: Any = None  # what it awaited when its task took it over
        self._go: asyncio.Future[None] | None = None

    def start(self, tg: asyncio.TaskGroup, name: str) -> None:
        """Make the source's own task in `tg`, named `name`, in a copy of the current context
        (as for any task); do it before the shared task starts, which makes it current during
        each step."""
        self.context = contextvars.copy_context()
        self._task = tg.create_task(self._host(), name=name, context=self.context)
        self._go = self._task.get_loop().create_future()

    async def _host(self) -> None:
        """The source's own task: idle while the shared task runs its steps; it ends with the
        source's end, or takes the source over and runs it to its end."""
        assert self._go is not None
        try:
            await self._go  # resolved: ended, or handed over (`_first`); or the source failed
        except asyncio.CancelledError as exc:
            if not self.driving:
                raise  # never started, or ended already
            # cancelled while the shared task runs its steps: the pipeline stops, or a timeout
            # the source entered expired; the source gets the cancellation where it waits
            coro = self._coro
            self._stop()
            resumed = Resumed(coro, None)
            resumed.throw_first(exc)
            await resumed
            return
        coro, self._coro = self._coro, None
        if coro is not None:  # handed over: it waits on `_first`, as a task would
            await Resumed(coro, self._first)

    def step(self, loop: asyncio.AbstractEventLoop, current: asyncio.Task[Any]) -> bool:
        """Run the source (in the shared task `current`) until it waits; True when it waits for
        room (FULL), False when it is no longer driven here (ended, failed, handed over, or its
        task about to take it over)."""
        go, context = self._go, self.context
        assert self._task is not None and go is not None and context is not None
        if go.done():  # its task was cancelled: it takes the source over
            return False
        coro = self._coro
        if coro is None:
            coro = self._coro = self.node.run()
            self.node.driven = True
        try:
            got = context.run(first_step_as, loop, current, self._task, coro)
        except StopIteration:
            self._stop()
            go.set_result(None)
            return False
        except (Exception, asyncio.CancelledError) as exc:  # the source's run failed
            self._stop()
            if isinstance(exc, asyncio.CancelledError):
                go.cancel()
            else:
                go.set_exception(exc)  # its task fails with it, as it would have
            return False
        if got is FULL:
            if self.consumer.window.in_place:
                return True
            # The node it feeds runs its items in tasks (they wait on I/O, timers), which take
            # the next items themselves: driving the source gains nothing here. Its own task
            # takes it over, resuming it where it waits for room.
            got = None
        # (else it awaits something else: I/O, a timer) its own task takes it over for good
        self._stop()
        self._first, self._coro = got, coro
        go.set_result(None)
        return False

    @property
    def driving(self) -> bool:
        """The shared task runs its steps: it has started, not ended, and its task has not
        taken it over."""
        return self.node.driven

    def _stop(self) -> None:
        """No longer driven here (the shared task lets go of its run)."""
        self.node.driven = False
        self._coro = None
