"""A watchdog for the event loop: notices a blocked loop and names the node that blocked it.

A coroutine that calls blocking code (time.sleep, a CPU-bound loop) freezes every session of
the server. A heartbeat task stamps the time every `threshold / 4` s; a thread checks the stamp,
and when the loop has not come round for `threshold` s it looks at the loop thread's Python stack
for the pipeline node running there (a frame whose `self` is a Processor). It logs one line at
once, and when the loop is back the session that owns the node gets a non-terminal
`pipeline_error` with code `loop_blocked`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import FrameType

from pipelines.processor import Processor

__all__ = ["BlockedLoop", "LoopWatchdog"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BlockedLoop:
    """What the watchdog saw: the node (if any) on the loop's stack, and for how long."""

    node: str | None
    coro: str | None
    sid: str | None
    pipeline: str | None
    where: str
    seconds: float


def _culprit(frame: FrameType | None) -> tuple[Processor | None, str]:
    where = ""
    while frame is not None:
        code = frame.f_code
        if not where:
            where = f"{code.co_name} ({code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno})"
        try:
            candidate = frame.f_locals.get("self")
        except Exception:  # a frame in an odd state: keep walking
            candidate = None
        if isinstance(candidate, Processor):
            return candidate, where
        frame = frame.f_back
    return None, where


class LoopWatchdog:
    """Watch the running loop from a thread; report blocks through `on_block` (on the loop)."""

    def __init__(
        self, threshold: float, on_block: Callable[[BlockedLoop], Awaitable[None]]
    ) -> None:
        self.threshold = threshold
        self.on_block = on_block
        self._beat = time.monotonic()
        self._found: BlockedLoop | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop_thread = threading.get_ident()

    def start(self) -> None:
        """Start the heartbeat (in the running loop) and the watching thread."""
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(
            self._heartbeat(), name="pipelines-server:watchdog"
        )
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop both; waits for the thread (it wakes every threshold / 4 s)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def _heartbeat(self) -> None:
        interval = self.threshold / 4
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            gap = now - self._beat
            self._beat = now
            with self._lock:
                found, self._found = self._found, None
            if found is not None:
                report = BlockedLoop(found.node, found.coro, found.sid, found.pipeline,
                                     found.where, round(gap, 3))
                logger.warning("event loop was blocked for %.2f s in %s", gap,
                               report.node and f"node {report.node!r}" or report.where)
                try:
                    await self.on_block(report)
                except Exception:
                    logger.exception("reporting a blocked loop failed")

    def _watch(self) -> None:
        interval = self.threshold / 4
        reported_for = 0.0
        while not self._stop.wait(interval):
            beat = self._beat
            if time.monotonic() - beat < self.threshold or beat == reported_for:
                continue
            reported_for = beat
            frame = sys._current_frames().get(self._loop_thread)
            node, where = _culprit(frame)
            del frame
            found = BlockedLoop(
                node.name if node is not None else None,
                node.coro_name if node is not None else None,
                node.env_vars.get("sid") if node is not None else None,
                node.env_vars.get("pipeline_id") if node is not None else None,
                where,
                round(time.monotonic() - beat, 3),
            )
            logger.warning(
                "event loop blocked for more than %.1f s: %s", self.threshold,
                f"node {found.node!r} ({found.coro}) in {where}" if found.node else where,
            )
            with self._lock:
                self._found = found
