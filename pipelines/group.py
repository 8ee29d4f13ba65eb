"""Nodes that share one task: a pipeline's local processor nodes take their turns in one task,
in graph order, rather than in a task each.

A node's turn (`Processor.turn`) never waits: it takes ready results and new items, passes
results on, and says what it waits for next. The group runs the turns of its nodes one after
the other, upstream first, until none has anything more to do, then waits once for whatever
wakes any of them: their shared waker (items arrived from outside the group, an item task
finished, an input ended) or room on an edge one of them is blocked on. A batch thus travels
down a chain of quick nodes in one wake-up of one task, where a task per node would be woken
once per node. Each node keeps its own window, metrics, errors, status and `blocked` state (the
stall watchdog reads them as before); the result is the same as with a task per node.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .channel import Channel, Waker
from .driven import DrivenSource, SourceNode
from .errors import PipelineError
from .processor import DONE, MORE, WAIT_INPUT, WAIT_ROOM, Detached, Processor

__all__ = ["NodeGroup", "PASSES_BEFORE_YIELD", "SOURCE_ITEMS_BEFORE_YIELD"]

#: Passes over the nodes that found work, one after the other, before the group lets the
#: other tasks run once (sources, item tasks) even though it still has work.
PASSES_BEFORE_YIELD = 64
#: Items its driven sources put, one pass after another, before the group lets the other
#: tasks run once, whatever the size of their edges (a chain of quick nodes moves 512 in well
#: under a millisecond).
SOURCE_ITEMS_BEFORE_YIELD = 512


class NodeGroup:
    """Runs `nodes` (in graph order, upstream first) in the calling task; `waker` is the one
    every one of them was built with. `sources`: sources that feed them, whose steps this
    task runs too, before its nodes' turns, while they only wait for room (driven.py)."""

    def __init__(self, nodes: list[Processor], waker: Waker,
                 sources: list[DrivenSource] | None = None) -> None:
        assert all(n.waker is waker for n in nodes), "the nodes of a group share its waker"
        self.nodes = nodes
        self.waker = waker
        self.sources = list(sources or [])

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    async def run(self) -> None:
        """Turn every node until each has ended; a node that fails fails the group (the other
        nodes count as cancelled, as their tasks would have been)."""
        live = list(self.nodes)
        for node in live:
            assert node.inlet is not None, "a processor needs an inlet (built by the Plumber)"
            node.begin()
        current: Processor | None = None
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None
        driven = list(self.sources)
        try:
            passes = fed = 0
            while live or driven:
                again = False
                for src in driven:
                    # its edge full: it waits for room (FULL); else it runs until it waits
                    if src.channel.full:
                        continue
                    counts = src.node.metrics
                    before = counts.items_out
                    if not src.step(loop, me):
                        driven = [s for s in driven if s is not src]  # no longer driven here
                        again = True  # (the loop's test again: it may have been the last)
                    fed += counts.items_out - before
                inputs: list[Processor] = []  # waiting for input
                room: list[Processor] = []  # waiting for room on full outlets
                ended: list[Processor] = []
                for node in live:
                    current = node
                    try:
                        state = node.turn()
                    except Detached:
                        node.detach()
                        state = DONE
                    if state == WAIT_INPUT:
                        inputs.append(node)
                    elif state == MORE:
                        again = True
                    elif state == WAIT_ROOM:
                        room.append(node)
                    else:
                        ended.append(node)
                current = None
                for node in ended:
                    live.remove(node)
                    await node.window.stop()
                    node.ended()
                if not again and not ended:
                    # a node further down may have made room for one blocked further up
                    again = (any(not ch.full for node in room for ch in node.full_outlets())
                             or any(not src.channel.full for src in driven))
                if again or ended:
                    passes += 1
                    if passes >= PASSES_BEFORE_YIELD or fed >= SOURCE_ITEMS_BEFORE_YIELD:
                        passes = fed = 0
                        await asyncio.sleep(0)
                    continue
                passes = fed = 0
                await self._wait(inputs, room, driven)
        except BaseException as exc:
            if current is not None and isinstance(exc, PipelineError):
                self._flush(live, current)
            for node in live:
                if node is current or (node.name == _node_of(exc) and current is None):
                    node.stopped(exc)
                else:
                    node.stopped(asyncio.CancelledError())
            raise
        finally:
            for node in live:
                await node.window.stop()

    @staticmethod
    def _flush(live: list[Processor], failed: Processor) -> None:
        """`failed` ends the run: the nodes after it take one more turn, so what it passed
        on before failing moves on as far as it can without waiting (as their own tasks would
        have run once before being cancelled)."""
        for node in live[live.index(failed) + 1:]:
            try:
                node.turn()
            except Exception:  # noqa: BLE001 - the first failure is the one reported
                pass

    async def _wait(self, inputs: list[Processor], room: list[Processor],
                    driven: list[DrivenSource]) -> None:
        """Wait until the waker is called or one of the edges the nodes in `room` (and the
        `driven` sources) are blocked on has room; every node shows the stall watchdog what it
        waits on meanwhile."""
        fut = self.waker.arm()
        waits: list[tuple[Processor | SourceNode, list[Channel]]] = [
            (node, node.full_outlets()) for node in room]
        waits += [(src.node, [src.channel]) for src in driven if src.driving]
        for node, chans in waits:
            for ch in chans:
                ch.add_putter(fut)
            node.block(fut, chans)
        for node in inputs:
            node.block(fut)
        try:
            await fut
        finally:
            for node in inputs:
                node.blocked = None
            for node, chans in waits:
                if node.blocked is fut:  # (a source's own task may have taken it over)
                    node.blocked = node.blocked_on = None
                for ch in chans:
                    ch.remove_putter(fut)


def _node_of(exc: BaseException) -> Any:
    return exc.node if isinstance(exc, PipelineError) else None
