"""Per-session state and the life of one pipeline run: start, stream results, end with `done`.

Each connected socket has a Session; each Session runs at most one PipelineRun at a time. A run
owns its pipeline (the engine's Plumber) and two tasks: `main` (pumps results to the client
through the credit window, then reports) and a side loop (metrics, item errors, the wall-clock
budget). Whatever ends a run (the pipeline finishing, `cancel`, a disconnect, SIGTERM, the
budget, a stalled client) goes through `PipelineRun.stop()`, so every run ends the same way:
engine tasks stopped, one `done` sent (unless the client left), nothing left behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import socketio  # type: ignore[import-untyped]
from pydantic import ValidationError

from pipelines.errors import PipelineError
from pipelines.plumber import Plumber
from pipelines.registry import Registry
from pipelines.remote.config import RemoteConfig
from pipelines.report import ItemError, Result, RunReport
from pipelines.reprs import safe_str

from .payload import CheckedPayload
from .protocol import RunOptions, code_label, error, fail, run_outcome
from .ratelimit import TokenBucket
from .settings import Settings
from .stats import ServerStats
from .watchdog import BlockedLoop
from .window import ClientStalled, CreditWindow, WindowClosed

__all__ = ["PipelineRun", "Session", "SessionManager", "SessionRefused", "oneline"]

logger = logging.getLogger(__name__)

_BIG_INT = 10**100
_STOP_MESSAGES = {
    "cancel": ("cancelled", None, "cancelled by the client"),
    "disconnect": ("cancelled", None, "the client disconnected"),
    "shutdown": ("cancelled", "shutdown", "the server is shutting down"),
    "budget_exceeded": ("failed", "budget_exceeded", "the pipeline ran past its wall-clock budget"),
    "client_stalled": ("failed", "client_stalled", "the client acknowledged no result in time"),
    "memory_exceeded": ("failed", "limit_exceeded", "the pipeline held more bytes than the "
                        "session's budget (limit max_session_bytes)"),
}
#: Seconds between two counts of the bytes a running pipeline holds.
MEMORY_CHECK_INTERVAL = 0.5


def oneline(text: object, limit: int = 300) -> str:
    """`text` as one escaped, truncated line, safe for logs (no newlines, escapes or NULs)."""
    s = safe_str(text, limit * 4)
    if len(s) > limit * 4:
        s = s[: limit * 4]
    escaped = s.encode("unicode_escape", "backslashreplace").decode("ascii")
    if len(escaped) > limit:
        escaped = escaped[:limit] + f"...(+{len(escaped) - limit})"
    return escaped


class SessionRefused(Exception):
    """Raised when a connection cannot become a session: `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class _ErrorTap:
    """Collects the engine's per-item errors for the side loop to send, rate-limited."""

    def __init__(self, keep: int) -> None:
        self.pending: deque[dict[str, Any]] = deque(maxlen=keep)
        self.suppressed = 0

    def add_item_error(self, err: ItemError) -> None:
        self.add(
            error(
                err.code,
                f"node {err.node!r}: item {err.item} failed: {err.error_type}: {err.message}",
                path=f"nodes.{err.node}",
                node=err.node,
            )
            | {"item": err.item, "error_type": err.error_type}
        )

    def add(self, err: dict[str, Any]) -> None:
        if len(self.pending) == self.pending.maxlen:
            self.suppressed += 1
        self.pending.append(err)


class PipelineRun:
    """One accepted pipeline of one session, from `pipeline_started` to `done`."""

    def __init__(
        self,
        session: Session,
        plumber: Plumber,
        pipeline_id: str,
        options: RunOptions,
        tap: _ErrorTap,
    ) -> None:
        settings = session.manager.settings
        self.session = session
        self.plumber = plumber
        self.pipeline_id = pipeline_id
        self.options = options
        self.tap = tap
        size = min(options.window or settings.default_window, settings.max_window)
        self.window = CreditWindow(size, stall_timeout=settings.stall_timeout,
                                   max_bytes=settings.max_session_bytes // 2)
        # Batches no larger than half the window keep two of them in flight (pipelining).
        self.chunk = max(1, min(settings.batch_max_items, size // 2 or 1))
        self.interval = max(options.metrics_interval, settings.metrics_min_interval)
        self.stop_reason: str | None = None
        self.delivered = 0
        self.skipped = 0
        self.started = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        self._error_bucket = TokenBucket(
            settings.max_error_events_per_second, settings.max_error_events_per_second
        )

    # -- control -------------------------------------------------------------------------
    def begin(self) -> None:
        """Start the pipeline and the task that streams it (sync: called from the handler)."""
        self.plumber.start()
        self.task = asyncio.get_running_loop().create_task(
            self._main(), name=f"pipelines-server:run:{self.pipeline_id}"
        )

    async def stop(self, reason: str) -> None:
        """End the run early for `reason` (the first reason wins); returns once the pipeline
        tasks are stopped. The run's own task then reports and ends."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.window.close()
        await self.plumber.cancel()

    async def wait_closed(self, grace: float) -> None:
        """Wait for the run's task to end; cancel it (hard) if it takes longer than `grace` s."""
        task = self.task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            logger.warning("pipeline %s did not end in %.1f s; cancelling it", self.pipeline_id,
                           grace)
            task.cancel()
            await asyncio.wait({task})

    # -- the run -------------------------------------------------------------------------
    async def _main(self) -> None:
        session, plumber = self.session, self.plumber
        side = asyncio.get_running_loop().create_task(
            self._side_loop(), name=f"pipelines-server:side:{self.pipeline_id}"
        )
        try:
            await session.emit(
                "pipeline_started", {"pipeline_id": self.pipeline_id, **plumber.topology}
            )
            try:
                await self._pump()
                if self.stop_reason is None:
                    await self.window.drain()
            except ClientStalled:
                await self.stop("client_stalled")
            except WindowClosed:
                pass  # stop() was called: the reason is recorded
            report = await (plumber.cancel() if self.stop_reason else plumber.wait())
            side.cancel()
            await asyncio.wait({side})
            await self._finish(report)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must still end the run with one `done`
            logger.error("pipeline %s of %s: internal error: %s: %s", self.pipeline_id,
                         session.sid, type(exc).__name__, oneline(exc))
            logger.debug("run traceback", exc_info=True)
            await self._finish_broken()
        finally:
            if not side.done():
                side.cancel()
                await asyncio.wait({side})
            if not plumber.done:
                await plumber.cancel()
            if session.run is self:
                session.run = None

    async def _finish_broken(self) -> None:
        err = error("internal_error", "the server failed while running this pipeline")
        self.session.manager.stats.pipelines.labels("failed").inc()
        try:
            await self.session.emit(
                "pipeline_error", err | {"pipeline_id": self.pipeline_id, "terminal": True})
            await self.session.emit("done", {
                "pipeline_id": self.pipeline_id, "status": "failed",
                "elapsed": round(time.monotonic() - self.started, 6), "results": self.delivered,
                "skipped": self.skipped, "nodes": {}, "error": err,
            })
        except Exception as exc:  # the socket may be what broke
            logger.warning("pipeline %s: could not tell the client: %s", self.pipeline_id,
                           oneline(exc))

    async def _finish(self, report: RunReport) -> None:
        session = self.session
        status, err = run_outcome(report, self.stop_reason, _STOP_MESSAGES)
        await self._send_errors(final=True)
        stats = session.manager.stats
        stats.pipelines.labels(status).inc()
        if err is not None and status == "failed":
            stats.errors.labels(code_label(err["code"])).inc()
            await session.emit(
                "pipeline_error", err | {"pipeline_id": self.pipeline_id, "terminal": True}
            )
        nodes = {}
        for name, node in report.nodes.items():
            d = node.to_dict()
            d.pop("first_errors", None)
            nodes[name] = d
        if self.options.metrics:
            # the final counters, so a watcher's last picture matches `done` (short runs included)
            await session.emit("metrics", {"pipeline_id": self.pipeline_id, **self._metrics()})
        await session.emit(
            "done",
            {
                "pipeline_id": self.pipeline_id,
                "status": status,
                "elapsed": round(time.monotonic() - self.started, 6),
                "results": self.delivered,
                "skipped": self.skipped,
                "nodes": nodes,
                "error": err,
            },
        )
        logger.info(
            "pipeline %s of %s ended %s: %d results in %.3f s%s",
            self.pipeline_id, session.sid, status, self.delivered,
            time.monotonic() - self.started,
            f" ({oneline(err['code'])}: {oneline(err['message'], 200)})" if err else "",
        )

    # -- results -------------------------------------------------------------------------
    def _deliverable(self, result: Result) -> tuple[Any, int] | None:
        """The value to send and its size in bytes, or None (an error is queued) if it cannot
        or must not be sent."""
        value = result.value
        kind = type(value)
        limit = self.session.manager.settings.max_result_bytes
        if kind is str:
            if len(value) * 6 + 2 <= limit:  # worst-case JSON size of a str
                return value, len(value) + 2
        elif value is None or kind is bool:
            return value, 8
        elif kind is int:
            if -_BIG_INT < value < _BIG_INT:
                return value, 8
        elif kind is float and math.isfinite(value):
            return value, 24
        try:
            size = len(json.dumps(value, allow_nan=False, separators=(",", ":")))
        except (TypeError, ValueError, RecursionError) as exc:
            self._skip(result, "unserializable_result",
                       f"result cannot be sent as JSON: {type(exc).__name__}: {exc}")
            return None
        if size > limit:
            self._skip(result, "result_too_large",
                       f"result of {size} bytes is over the limit of {limit} bytes")
            return None
        return value, size

    def _skip(self, result: Result, code: str, message: str) -> None:
        self.skipped += 1
        self.tap.add(
            error(code, f"node {result.node!r}: {oneline(message, 300)}",
                  path=f"nodes.{result.node}", node=result.node)
        )

    def _values(self, batch: list[Result]) -> tuple[list[tuple[str, Any]], list[int]]:
        """(node, value) of every result that may be sent, and the size of each in bytes; the
        common types checked inline."""
        str_max = self.session.manager.settings.max_result_bytes // 6 - 1
        out: list[tuple[str, Any]] = []
        sizes: list[int] = []
        append, size = out.append, sizes.append
        for r in batch:
            v = r.value
            kind = type(v)
            if kind is int and -_BIG_INT < v < _BIG_INT:
                append((r.node, v))
                size(8)
            elif kind is str and len(v) <= str_max:
                append((r.node, v))
                size(len(v) + 2)
            elif (checked := self._deliverable(r)) is not None:
                append((r.node, checked[0]))
                size(checked[1])
        return out, sizes

    def _parts(self, values: list[tuple[str, Any]], sizes: list[int]) -> list[tuple[int, int, int]]:
        """(start, end, bytes) of each `results` event: at most `chunk` results and half the
        window's bytes (a single larger result goes alone)."""
        parts = []
        byte_chunk = self.window.max_bytes // 2
        start, nbytes = 0, 0
        for i, n in enumerate(sizes):
            if i > start and (i - start >= self.chunk or nbytes + n > byte_chunk):
                parts.append((start, i, nbytes))
                start, nbytes = i, 0
            nbytes += n
        parts.append((start, len(sizes), nbytes))
        return parts

    async def _pump(self) -> None:
        batch_mode = self.options.results == "batch"
        emit, window, stats = self.session.emit, self.window, self.session.manager.stats
        async for batch in self.plumber.result_batches(max_batch=1024):
            values, sizes = self._values(batch)
            if not values:
                continue
            if batch_mode:
                for start, end, nbytes in self._parts(values, sizes):
                    seq = self.delivered
                    items = [
                        {"node": node, "seq": seq + i, "value": v}
                        for i, (node, v) in enumerate(values[start:end])
                    ]
                    await window.acquire(len(items), nbytes)
                    callback = window.sent(len(items), nbytes, flush=True)
                    self.delivered += len(items)
                    # Values are checked (no bytes): the packet need not scan them for binary.
                    payload = CheckedPayload(pipeline_id=self.pipeline_id, items=items)
                    await emit("results", payload, callback)
            else:
                last = len(values) - 1
                for i, (_, v) in enumerate(values):
                    await window.acquire(1, sizes[i])
                    callback = window.sent(1, sizes[i], flush=i == last)
                    self.delivered += 1
                    await emit("recv", (v,), callback)
            stats.results.inc(len(values))

    # -- metrics, item errors, budget ----------------------------------------------------
    async def _side_loop(self) -> None:
        try:
            await self._side_work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # metrics are not worth the run: it goes on without them
            logger.error("pipeline %s: side loop failed: %s: %s", self.pipeline_id,
                         type(exc).__name__, oneline(exc))

    async def _side_work(self) -> None:
        settings = self.session.manager.settings
        tick = min(self.interval, 0.25)
        next_metrics = time.monotonic() + self.interval
        next_memory = time.monotonic() + MEMORY_CHECK_INTERVAL
        deadline = self.started + settings.pipeline_budget
        budget = settings.max_session_bytes
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now >= next_memory:
                next_memory = now + MEMORY_CHECK_INTERVAL
                sending = self.window.unacked_bytes
                if sending + self.plumber.held_bytes(budget - sending) > budget:
                    await self.stop("memory_exceeded")
                    return
            if now >= deadline:
                await self.stop("budget_exceeded")
                return
            await self._send_errors()
            if self.options.metrics and now >= next_metrics and not self.window.full:
                next_metrics = now + self.interval
                await self.session.emit(
                    "metrics", {"pipeline_id": self.pipeline_id, **self._metrics()}
                )

    def _metrics(self) -> dict[str, Any]:
        snap = self.plumber.metrics()
        return {"elapsed": snap["elapsed"], "nodes": snap["nodes"], "edges": snap["edges"],
                "results": self.delivered}

    async def _send_errors(self, *, final: bool = False) -> None:
        """Send queued item errors within the rate; at the end, sum up what was held back."""
        pending, stats = self.tap.pending, self.session.manager.stats
        while pending and (final or self._error_bucket.take()):
            err = pending.popleft()
            stats.errors.labels(code_label(err["code"])).inc()
            await self.session.emit(
                "pipeline_error", err | {"pipeline_id": self.pipeline_id, "terminal": False}
            )
        if pending:  # over the rate: count, do not send
            self.tap.suppressed += len(pending)
            pending.clear()
        if final and self.tap.suppressed:
            await self.session.emit("pipeline_error", error(
                "node_error", f"{self.tap.suppressed} more item errors not shown"
            ) | {"pipeline_id": self.pipeline_id, "terminal": False})
            self.tap.suppressed = 0


class Session:
    """One connected socket: its limits, counters and (at most one) running pipeline."""

    def __init__(self, manager: SessionManager, sid: str, remote: str | None) -> None:
        settings = manager.settings
        self.manager = manager
        self.sid = sid
        self.remote = remote
        self.events = TokenBucket(settings.events_per_second, settings.event_burst)
        self.submissions = TokenBucket(settings.submissions_per_second, settings.submission_burst)
        self.inflight = 0
        self.run: PipelineRun | None = None
        self.gone = False
        self._last_error_at: dict[str, float] = {}

    async def emit(
        self, event: str, data: Any, callback: Callable[..., None] | None = None
    ) -> None:
        """Send one event to this client (nothing once it left)."""
        if not self.gone:
            # Local socket only: never through the (at most once) cross-server manager.
            await self.manager.sio.emit(event, data, to=self.sid, callback=callback,
                                        ignore_queue=True)

    def throttled(self, code: str, interval: float = 1.0) -> bool:
        """True if an error with `code` was already reported in the last `interval` seconds."""
        now = time.monotonic()
        last = self._last_error_at.get(code)
        if last is not None and now - last < interval:
            return True
        self._last_error_at[code] = now
        return False

    # -- requests ------------------------------------------------------------------------
    def start(self, spec: Any, options: Any) -> dict[str, Any]:
        """Validate and start a pipeline; the ack answer."""
        manager = self.manager
        if manager.closing:
            return fail(error("shutdown", "the server is shutting down"))
        if self.run is not None:
            return fail(error(
                "busy",
                f"pipeline {self.run.pipeline_id} is still running in this session; "
                "cancel it or wait for its 'done'",
            ))
        if not isinstance(spec, dict):
            return fail(error("invalid_payload", "the spec must be a JSON object", path="spec"))
        if options is None:
            options = {}
        try:
            opts = RunOptions.model_validate(options)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return fail(error(
                "invalid_payload",
                f"options: {first['msg']}",
                path="options" + (f".{where}" if where else ""),
            ))
        tap = _ErrorTap(keep=4 * manager.settings.max_error_events_per_second)
        pipeline_id = uuid.uuid4().hex[:16]
        try:
            plumber = manager.build(spec, sid=self.sid, name=pipeline_id,
                                    on_item_error=tap.add_item_error)
        except PipelineError as exc:
            return fail(exc.to_dict())
        run = PipelineRun(self, plumber, pipeline_id, opts, tap)
        self.run = run
        run.begin()
        topology = plumber.topology
        return {"ok": True, "pipeline_id": pipeline_id, "outputs": topology["outputs"],
                "nodes": topology["nodes"], "edges": topology["edges"]}

    async def cancel(self, pipeline_id: Any) -> dict[str, Any]:
        """Stop this session's pipeline (if `pipeline_id` is given, only that one)."""
        run = self.run
        if run is None or run.stop_reason is not None or (
            pipeline_id is not None and pipeline_id != run.pipeline_id
        ):
            which = f" {oneline(pipeline_id, 64)}" if pipeline_id is not None else ""
            return fail(error("not_running", f"no pipeline{which} is running in this session"))
        await run.stop("cancel")
        return {"ok": True, "pipeline_id": run.pipeline_id}

    async def close(self, reason: str, grace: float) -> None:
        """End the running pipeline for `reason` and wait (at most `grace` s) until it is gone."""
        run = self.run
        if run is not None:
            await run.stop(reason)
            await run.wait_closed(grace)


class SessionManager:
    """Every session of one app: admission, lookup, teardown, and the shutdown sequence."""

    def __init__(
        self,
        settings: Settings,
        sio: socketio.AsyncServer,
        registry: Registry,
        remote: RemoteConfig | None = None,
    ) -> None:
        self.settings = settings
        self.sio = sio
        self.registry = registry
        self.remote = remote
        self.limits = settings.spec_limits()
        self.sessions: dict[str, Session] = {}
        self.closing = False
        self.stats = ServerStats(sessions=lambda: len(self.sessions), running=self.running)

    def __len__(self) -> int:
        return len(self.sessions)

    def running(self) -> int:
        """How many pipelines run now."""
        return sum(1 for s in self.sessions.values() if s.run is not None)

    def get(self, sid: str) -> Session | None:
        return self.sessions.get(sid)

    def build(
        self,
        spec: dict[str, Any],
        *,
        sid: str | None = None,
        name: str | None = None,
        on_item_error: Callable[[ItemError], None] | None = None,
    ) -> Plumber:
        """Validate `spec` against the registry and limits; raises SpecError. Starts nothing."""
        return Plumber(
            spec,
            registry=self.registry,
            env_vars={"sid": sid, "pipeline_id": name} if sid is not None else {},
            limits=self.limits,
            collect=True,
            # The credit window already holds what is in flight to the client; a large result
            # buffer behind it (the library default is 1024) would let a stalled client pin
            # 1024 x max_result_bytes of server memory.
            result_buffer=self.settings.batch_max_items,
            on_item_error=on_item_error,
            name=name,
            remote=self.remote,
        )

    async def report_blocked_loop(self, block: BlockedLoop) -> None:
        """Tell the session whose node blocked the event loop (the watchdog's callback)."""
        self.stats.errors.labels("loop_blocked").inc()
        session = self.sessions.get(block.sid) if block.sid is not None else None
        if session is None or block.node is None:
            return
        await session.emit("pipeline_error", error(
            "loop_blocked",
            f"node {block.node!r} ({block.coro}) blocked the server's event loop for "
            f"{block.seconds:.2f} s; use asyncio.to_thread for blocking work",
            path=f"nodes.{block.node}", node=block.node,
        ) | {"pipeline_id": block.pipeline, "terminal": False})

    def open(self, sid: str, remote: str | None) -> Session:
        """Admit a new connection as a session; raises SessionRefused."""
        if self.closing:
            raise SessionRefused("shutdown", "the server is shutting down")
        if len(self.sessions) >= self.settings.max_sessions:
            raise SessionRefused(
                "too_many_sessions", f"the server holds {self.settings.max_sessions} sessions"
            )
        session = Session(self, sid, remote)
        self.sessions[sid] = session
        return session

    async def close(self, sid: str, reason: str = "disconnect") -> None:
        """Forget a session and tear down its pipeline (the client is gone)."""
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        session.gone = True
        await session.close(reason, self.settings.shutdown_timeout)

    async def shutdown(self) -> None:
        """Stop admitting, end every pipeline telling its client, then disconnect everyone."""
        self.closing = True
        sessions = list(self.sessions.values())
        timeout = self.settings.shutdown_timeout
        if sessions:
            logger.info("shutting down: ending %d session(s)", len(sessions))
            await asyncio.gather(*(s.close("shutdown", timeout / 2) for s in sessions))
            for s in sessions:
                if not s.gone:
                    await self.sio.disconnect(s.sid, ignore_queue=True)

    async def close_all(self) -> None:
        """Tear down whatever is left (app cleanup)."""
        self.closing = True
        for sid in list(self.sessions):
            await self.close(sid, "shutdown")
