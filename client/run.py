"""One submitted pipeline as the client sees it: results as they stream, metrics, the report.

The connection's event handlers feed a :class:`Run`; the application reads it. Results are
put back in ``seq`` order, handed out once, and acknowledged only while the run's buffer has
room, so a slow reader slows the server's output nodes (the server's credit window) instead
of growing memory here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from .errors import (
    ClientError,
    NotRunningError,
    ProtocolError,
    failure_from_payload,
)
from .types import DoneReport, PipelineInfo, ResultItem, ResultsMode

__all__ = ["Run"]

logger = logging.getLogger(__name__)

# Out-of-order results held while waiting for a missing seq; the server's credit window
# keeps this far smaller, so reaching it means results were lost.
_MAX_PENDING = 65_536
_MAX_ERRORS_KEPT = 100


class Run:
    """A pipeline submitted with :meth:`PipelinesClient.submit`.

    Iterate it (``async for item in run``) to get :class:`ResultItem` objects in order; the
    loop ends when the pipeline is done. :meth:`wait` returns the final :class:`DoneReport`.
    Each result is handed out once: two tasks iterating one run share its results.
    """

    def __init__(
        self,
        *,
        mode: ResultsMode,
        buffer: int,
        done_grace: float,
        cancel_request: Callable[[str | None], Awaitable[Any]],
    ) -> None:
        self.mode: ResultsMode = mode
        self.info: PipelineInfo | None = None
        self.errors: deque[dict[str, Any]] = deque(maxlen=_MAX_ERRORS_KEPT)
        """The latest non-terminal ``pipeline_error`` payloads (``node_error`` and the like)."""
        self.error_count = 0
        self._buffer = max(1, buffer)
        self._done_grace = done_grace
        self._cancel_request = cancel_request
        self._cond = asyncio.Condition()
        self._ready: deque[ResultItem] = deque()
        self._pending: dict[int, ResultItem] = {}
        self._next_seq = 0
        self._duplicates = 0
        self._report: DoneReport | None = None
        self._terminal_error: dict[str, Any] | None = None
        self._failure: ClientError | None = None
        self._ending_since: float | None = None
        self._metrics: dict[str, Any] | None = None
        self._metrics_version = 0
        self._space = asyncio.Event()  # set while the reader is not behind
        self._space.set()
        self._waiters = 0  # tasks in wait(): while any, acks are never held
        self._started = time.monotonic()

    # -- read side ---------------------------------------------------------------------------

    @property
    def pipeline_id(self) -> str | None:
        """The server's id for this pipeline (None until accepted)."""
        return self.info.pipeline_id if self.info else None

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The latest ``metrics`` payload (per-node counters), or None before the first one."""
        return self._metrics

    @property
    def report(self) -> DoneReport | None:
        """The final report once the ``done`` event arrived, else None."""
        return self._report

    @property
    def received(self) -> int:
        """How many results arrived in order so far."""
        return self._next_seq

    @property
    def ready_count(self) -> int:
        """How many results arrived and wait to be read."""
        return len(self._ready)

    @property
    def finished(self) -> bool:
        """True once the server said done, or the run failed on the client side."""
        return self._report is not None or self._failure is not None

    @property
    def elapsed(self) -> float:
        """Seconds since the run was submitted (client clock)."""
        return time.monotonic() - self._started

    def __aiter__(self) -> AsyncIterator[ResultItem]:
        return self.results()

    async def results(self) -> AsyncIterator[ResultItem]:
        """Yield each result once, in ``seq`` order, until the pipeline is done.

        Leaving the loop early is fine: the results not taken stay for the next reader.

        :raises PipelineFailedError: after the last result, when the run failed.
        :raises DisconnectedError: when the connection dropped before the end.
        :raises ProtocolError: when the server reported more results than it sent.
        """
        while True:
            if self._ready:
                item = self._ready.popleft()
                if len(self._ready) < self._buffer:
                    self._space.set()
                yield item
                continue
            if not await self._more():
                break
        self._report_or_raise()

    async def collect(self) -> list[ResultItem]:
        """Read every (remaining) result into a list and return it (see :meth:`results`)."""
        return [item async for item in self.results()]

    async def wait(self) -> DoneReport:
        """Wait for the end of the run and return its report, whatever the status.

        Results nobody read stay readable afterwards; while this waits they are accepted
        without limit, so the pipeline is never held up by its own reader. Bound the wait
        with ``asyncio.timeout()`` if needed.

        :raises DisconnectedError: when the connection dropped before the end.
        :raises ProtocolError: when the server reported more results than it sent.
        """
        self._waiters += 1
        self._space.set()
        try:
            while await self._more(wait_for_end=True):
                pass
        finally:
            self._waiters -= 1
        if self._failure is not None:
            raise self._failure
        assert self._report is not None
        return self._report

    async def cancel(self) -> DoneReport:
        """Ask the server to stop this pipeline, wait for its end and return the report.

        A run that already ended is fine: its report is returned as it is.
        """
        if not self.finished:
            try:
                await self._cancel_request(self.pipeline_id)
            except NotRunningError:
                pass  # it ended on its own while we asked; the done event is on its way
        return await self.wait()

    async def watch_metrics(self) -> AsyncIterator[dict[str, Any]]:
        """Yield each new ``metrics`` snapshot (latest wins, none are queued) until the end."""
        seen = 0
        while True:
            async with self._cond:
                while self._metrics_version == seen and not self.finished:
                    await self._cond.wait()
                if self._metrics_version == seen:
                    return
                seen = self._metrics_version
                snapshot = self._metrics
            if snapshot is not None:
                yield snapshot

    # -- internals of the read side ------------------------------------------------------------

    @property
    def _complete(self) -> bool:
        """The done event arrived and so did every result it counts."""
        return self._report is not None and self._next_seq >= self._report.results

    @property
    def _ended(self) -> bool:
        return self._failure is not None or self._complete

    async def _more(self, *, wait_for_end: bool = False) -> bool:
        """Wait until a result is ready (True) or the run ended (False).

        With ``wait_for_end``, ready results do not count: wait for the end only.
        """
        async with self._cond:
            while True:
                if self._ready and not wait_for_end:
                    return True
                if self._failure is not None or self._complete:
                    return False
                if self._ending_since is None:
                    await self._cond.wait()
                    continue
                # The run is ending (done with results still missing, or a terminal error
                # without done): wait a bounded time for the rest, then conclude.
                remaining = self._ending_since + self._done_grace - time.monotonic()
                try:
                    async with asyncio.timeout(max(remaining, 0)):
                        await self._cond.wait()
                except TimeoutError:
                    self._conclude_late()

    def _conclude_late(self) -> None:
        if self._report is not None:
            self._failure = ProtocolError(
                f"pipeline {self.pipeline_id}: done reports {self._report.results} results "
                f"but {self._next_seq} arrived in order"
                + (f" (gap at seq {self._next_seq})" if self._pending else "")
            )
        else:
            error = self._terminal_error or {"code": "failed", "message": "pipeline failed"}
            logger.warning("pipeline %s: terminal error without a done event", self.pipeline_id)
            self._report = DoneReport(
                pipeline_id=self.pipeline_id,
                status="failed",
                elapsed=self.elapsed,
                results=self._next_seq,
                nodes={},
                error=dict(error),
            )
        self._cond.notify_all()

    def _report_or_raise(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._report is not None and self._report.status == "failed":
            raise failure_from_payload(
                self._report.error
                or self._terminal_error
                or {"code": "failed", "message": "pipeline failed"},
                report=self._report,
            )

    # -- write side: called by the connection's event handlers --------------------------------

    def _accepts(self, payload_id: Any) -> bool:
        """Events for another pipeline id (an earlier run's stragglers) are not ours."""
        return payload_id is None or self.info is None or payload_id == self.info.pipeline_id

    def _accept(self, info: PipelineInfo) -> None:
        if self.info is None:
            self.info = info

    async def _feed_batch(self, items: list[Any]) -> None:
        async with self._cond:
            if self.finished and self._complete:
                return
            for raw in items:
                if not isinstance(raw, Mapping) or not isinstance(raw.get("seq"), int):
                    logger.warning("pipeline %s: malformed result %.200r", self.pipeline_id, raw)
                    continue
                seq = raw["seq"]
                if seq < self._next_seq or seq in self._pending:
                    self._duplicates += 1
                    continue
                node = raw.get("node")
                self._pending[seq] = ResultItem(
                    node=None if node is None else str(node), seq=seq, value=raw.get("value")
                )
            while self._next_seq in self._pending:
                self._ready.append(self._pending.pop(self._next_seq))
                self._next_seq += 1
            if len(self._pending) > _MAX_PENDING:
                self._fail_locked(
                    ProtocolError(f"pipeline {self.pipeline_id}: result seq {self._next_seq} never arrived")
                )
            self._cond.notify_all()
        await self._hold_ack()

    async def _feed_value(self, value: Any) -> None:
        async with self._cond:
            if self.finished and self._complete:
                return
            self._ready.append(ResultItem(node=None, seq=self._next_seq, value=value))
            self._next_seq += 1
            self._cond.notify_all()
        await self._hold_ack()

    async def _hold_ack(self) -> None:
        # The handler's return sends the ack: hold it while the reader is behind, so the
        # server's credit window (not this buffer) absorbs a slow reader.
        while len(self._ready) >= self._buffer and not self._waiters and not self.finished:
            self._space.clear()
            await self._space.wait()

    async def _set_metrics(self, payload: dict[str, Any]) -> None:
        async with self._cond:
            self._metrics = payload
            self._metrics_version += 1
            self._cond.notify_all()

    async def _add_error(self, payload: dict[str, Any]) -> None:
        async with self._cond:
            if payload.get("terminal"):
                self._terminal_error = payload
                if self._ending_since is None:
                    self._ending_since = time.monotonic()
            else:
                self.errors.append(payload)
                self.error_count += 1
            self._cond.notify_all()

    async def _set_done(self, report: DoneReport) -> None:
        async with self._cond:
            if self._report is None:
                self._report = report
                if not self._complete:
                    self._ending_since = time.monotonic()
            self._space.set()
            self._cond.notify_all()

    async def _fail(self, exc: ClientError) -> None:
        async with self._cond:
            self._fail_locked(exc)

    def _fail_locked(self, exc: ClientError) -> None:
        if self._failure is None and not self._complete:
            self._failure = exc
        self._space.set()
        self._cond.notify_all()
