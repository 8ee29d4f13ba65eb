"""Running a coroutine's first step now, in place, as the task that will own it afterwards.

A node runs each item's first step eagerly (most items finish without suspending, and then no
task is ever scheduled for them). Whatever that first step captures as "the current task" --
`asyncio.timeout()`, `asyncio.TaskGroup`, an aiohttp client timeout, `asyncio.current_task()`
-- must be the task that runs the item to its end, not the node's own task: a timeout bound to
the node's task would cancel the whole node. So the node creates the item's host task first and
runs the first step with that task made current for the duration of the step.
"""

from __future__ import annotations

import asyncio
from asyncio.tasks import _enter_task as enter_task  # the hooks asyncio offers task-like runners
from asyncio.tasks import _leave_task as leave_task
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["Resumed", "first_step_as", "start_eagerly"]


class Resumed:
    """Hands a coroutine that already ran its first step over to a Task, step for step."""

    __slots__ = ("_coro", "_first", "_throw")

    def __init__(self, coro: Any, first: Any) -> None:
        self._coro = coro
        self._first = first
        self._throw: BaseException | None = None

    def throw_first(self, exc: BaseException) -> None:
        """Throw `exc` into the coroutine before anything else (its task was cancelled before
        it took the coroutine over)."""
        self._throw = exc

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending, exc = self._coro, self._first, self._throw
        self._first = self._throw = None
        while True:
            if exc is not None:  # forwarded into the coroutine, incl. CancelledError
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                exc = None
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as thrown:
                exc = thrown
                continue
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def first_step_as(loop: asyncio.AbstractEventLoop, current: asyncio.Task[Any],
                  host: asyncio.Task[Any], coro: Coroutine[Any, Any, Any],
                  value: Any = None) -> Any:
    """Run a step of `coro` now (sending it `value`: None for its first step) with `host` as
    the current task instead of `current`.

    Returns what the step yielded (the coroutine suspended) or raises StopIteration (it
    finished) or whatever it raised. `host` must not have started: it is only the identity the
    step sees; the caller hands the suspended coroutine over to it afterwards.
    """
    leave_task(loop, current)
    enter_task(loop, host)
    try:
        return coro.send(value)
    finally:
        leave_task(loop, host)
        enter_task(loop, current)


async def _host(handoff: list[Any]) -> Any:
    if not handoff:
        return None  # the coroutine finished (or raised) in its first step
    coro, first = handoff
    return await Resumed(coro, first)


def start_eagerly(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run `coro`'s first step now: ``(True, value)`` when it finished there, else ``(False,
    task)``, the task that ran the step (as the current task) and now runs the rest. What the
    first step raises propagates. Call it from inside a task."""
    loop = asyncio.get_running_loop()
    current = asyncio.current_task(loop)
    assert current is not None, "start_eagerly runs inside a task"
    handoff: list[Any] = []
    host = loop.create_task(_host(handoff))
    try:
        first = first_step_as(loop, current, host, coro)
    except StopIteration as stop:
        return True, stop.value
    handoff += (coro, first)
    return False, host
