"""`POST /api/runs`: run a pipeline over plain HTTP and stream its results as NDJSON.

The body is a spec, or `{"spec": spec, "options": {"timeout": seconds}}`. Everything a socket
submission goes through is checked first (body size, plain JSON, the spec against the registry
and the limits, a rate per client address, a cap on HTTP runs at once); a refusal is one JSON
error answer (400, 413, 422, 429, 503) and nothing runs. An accepted run answers 200 and streams
one JSON line per result `{"node", "seq", "value"}`, a line `{"error": {...}}` per reported item
error (at most `max_error_events_per_second`), and a last line `{"done": {...}}`, the socket
`done` payload.

Backpressure is the TCP connection's: each chunk is written and drained before the next result
is taken, so a client that reads slowly slows its own pipeline down, and one that stops reading
for `stall_timeout` seconds stops it (`client_stalled`). A client that disconnects cancels the
run. The wall-clock budget, the result size cap and shutdown apply as they do to socket runs.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.errors import PipelineError
from pipelines.plumber import Plumber
from pipelines.report import ItemError, Result, RunReport

from .admission import ADMISSION
from .keys import SESSIONS, SETTINGS
from .payload import PayloadProblem, check_payload, loads_checked
from .protocol import error, fail, run_outcome
from .ratelimit import BucketTable, TokenBucket
from .session import oneline
from .stats import ServerStats

__all__ = ["ErrorLines", "HttpRun", "HttpRunOptions", "running_http_runs", "setup_http_runs"]

logger = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
_STOPS = {
    "disconnect": ("cancelled", None, "the client disconnected"),
    "shutdown": ("cancelled", "shutdown", "the server is shutting down"),
    "timeout": ("cancelled", "timeout", "the run reached its options.timeout"),
    "budget_exceeded": ("failed", "budget_exceeded", "the pipeline ran past its wall-clock budget"),
    "client_stalled": ("failed", "client_stalled", "the client read no result in time"),
}


class HttpRunOptions(BaseModel):
    """The optional `options` of `POST /api/runs`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    timeout: float | None = Field(
        None, gt=0, le=86_400, allow_inf_nan=False,
        description="Cancel the run after this many seconds (status cancelled, code timeout).")


RUNS = web.AppKey("pipelines_http_runs", set)
RUN_BUCKETS = web.AppKey("pipelines_http_run_buckets", BucketTable)
OriginCheck = Callable[[str | None, dict[str, Any]], bool]
ORIGIN_ALLOWED: web.AppKey[OriginCheck] = web.AppKey("pipelines_http_run_origins")


def _json(data: Any, status: int) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, allow_nan=False))


def _encode(line: dict[str, Any]) -> bytes:
    return json.dumps(line, allow_nan=False, separators=(",", ":")).encode() + b"\n"


class ErrorLines:
    """Item errors of one run, sent as `{"error": ...}` lines at most `rate` a second."""

    def __init__(self, rate: int, stats: ServerStats) -> None:
        self.pending: deque[dict[str, Any]] = deque(maxlen=4 * rate)
        self.suppressed = 0
        self.bucket = TokenBucket(rate, rate)
        self.stats = stats

    def add_item_error(self, err: ItemError) -> None:
        """The engine's callback for an item that failed."""
        self.add(error(
            "node_error", f"node {err.node!r}: item {err.item} failed: {err.error_type}: "
            f"{err.message}", path=f"nodes.{err.node}", node=err.node,
        ) | {"item": err.item, "error_type": err.error_type})

    def add(self, err: dict[str, Any]) -> None:
        if len(self.pending) == self.pending.maxlen:
            self.suppressed += 1
        self.pending.append(err)

    def lines(self, final: bool = False) -> list[bytes]:
        """The lines to send now (within the rate; at the end, a sum of what was held back)."""
        lines = []
        while self.pending and (final or self.bucket.take()):
            err = self.pending.popleft()
            self.stats.errors.labels(err["code"]).inc()
            lines.append(_encode({"error": err}))
        if self.pending:  # over the rate: count, do not send
            self.suppressed += len(self.pending)
            self.pending.clear()
        if final and self.suppressed:
            lines.append(_encode({"error": error(
                "node_error", f"{self.suppressed} more item errors not shown")}))
            self.suppressed = 0
        return lines


class HttpRun:
    """One accepted HTTP run: the pipeline, its response stream and whatever stops it."""

    def __init__(self, request: web.Request, plumber: Plumber, pipeline_id: str,
                 options: HttpRunOptions, response: web.StreamResponse,
                 errors: ErrorLines) -> None:
        self.request = request
        self.settings = request.app[SETTINGS]
        self.stats = request.app[SESSIONS].stats
        self.plumber = plumber
        self.pipeline_id = pipeline_id
        self.options = options
        self.response = response
        self.errors = errors
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        self.delivered = 0
        self.skipped = 0
        self.finished = asyncio.Event()

    async def stop(self, reason: str) -> None:
        """End the run early for `reason` (the first reason wins)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        await self.plumber.cancel()

    # -- the run --------------------------------------------------------------------------
    async def stream(self) -> None:
        """Run the pipeline, writing its lines; the done line last (unless the client left)."""
        self.plumber.start()
        watcher = asyncio.get_running_loop().create_task(
            self._watch(), name=f"pipelines-server:http-watch:{self.pipeline_id}")
        try:
            try:
                await self._pump()
            except (ConnectionError, asyncio.CancelledError) as exc:
                # A reset while writing, or aiohttp cancelling the handler: the client left.
                await self.stop("disconnect")
                if isinstance(exc, asyncio.CancelledError):
                    raise
            except TimeoutError:
                await self.stop("client_stalled")
            report = await (self.plumber.cancel() if self.stop_reason else self.plumber.wait())
            watcher.cancel()
            await asyncio.wait({watcher})
            await self._finish(report)
        finally:
            if not watcher.done():
                watcher.cancel()
                await asyncio.wait({watcher})
            if not self.plumber.done:
                await self.plumber.cancel()
            self.finished.set()

    async def _write(self, lines: list[bytes]) -> None:
        # Drained before returning: the client's reading paces the pipeline.
        async with asyncio.timeout(self.settings.stall_timeout):
            await self.response.write(b"".join(lines))

    def _line(self, result: Result, seq: int) -> bytes | None:
        try:
            line = json.dumps({"node": result.node, "seq": seq, "value": result.value},
                              allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            self._skip(result, "unserializable_result",
                       f"result cannot be sent as JSON: {type(exc).__name__}: {exc}")
            return None
        limit = self.settings.max_result_bytes
        if len(line) > limit:  # the line is larger than its value: measure the value itself
            size = len(json.dumps(result.value, separators=(",", ":")).encode())
            if size > limit:
                self._skip(result, "result_too_large",
                           f"result of {size} bytes is over the limit of {limit} bytes")
                return None
        return line + b"\n"

    def _skip(self, result: Result, code: str, message: str) -> None:
        self.skipped += 1
        self.errors.add(error(code, f"node {result.node!r}: {oneline(message, 300)}",
                              path=f"nodes.{result.node}", node=result.node))

    async def _pump(self) -> None:
        async for batch in self.plumber.result_batches(max_batch=self.settings.batch_max_items):
            lines = self.errors.lines()
            before = self.delivered
            for result in batch:
                line = self._line(result, self.delivered)
                if line is not None:
                    lines.append(line)
                    self.delivered += 1
            if lines:
                await self._write(lines)
                self.stats.results.inc(self.delivered - before)

    async def _watch(self) -> None:
        """Budget, options.timeout and a client that left while no result was being written."""
        budget = self.started + self.settings.pipeline_budget
        deadline = budget if self.options.timeout is None else min(
            budget, self.started + self.options.timeout)
        while True:
            await asyncio.sleep(0.1)
            transport = self.request.transport
            if transport is None or transport.is_closing():
                await self.stop("disconnect")
                return
            if time.monotonic() >= deadline:
                await self.stop("budget_exceeded" if deadline == budget else "timeout")
                return

    async def _finish(self, report: RunReport) -> None:
        status, err = run_outcome(report, self.stop_reason, _STOPS)
        self.stats.pipelines.labels(status).inc()
        if err is not None and status == "failed":
            self.stats.errors.labels(err["code"]).inc()
        elapsed = time.monotonic() - self.started
        logger.info("http run %s from %s ended %s: %d results in %.3f s%s", self.pipeline_id,
                    oneline(self.request.remote, 60), status, self.delivered, elapsed,
                    f" ({err['code']})" if err else "")
        if self.stop_reason in ("disconnect", "client_stalled"):
            transport = self.request.transport
            if transport is not None:
                transport.abort()  # nobody reads: do not wait on a full socket buffer
            return
        nodes = {}
        for name, node in report.nodes.items():
            d = node.to_dict()
            d.pop("first_errors", None)
            nodes[name] = d
        done = {"pipeline_id": self.pipeline_id, "status": status, "elapsed": round(elapsed, 6),
                "results": self.delivered, "skipped": self.skipped, "nodes": nodes, "error": err}
        try:
            await self._write([*self.errors.lines(final=True), _encode({"done": done})])
        except (ConnectionError, TimeoutError):
            logger.info("http run %s: the client left before the done line", self.pipeline_id)


def _refuse(code: str, message: str, status: int, **extra: Any) -> web.Response:
    return _json(fail(error(code, message, **extra)), status)


async def post_run(request: web.Request) -> web.StreamResponse:
    """Validate and run a pipeline; stream its results as NDJSON (see the module doc)."""
    settings, manager = request.app[SETTINGS], request.app[SESSIONS]
    runs: set[HttpRun] = request.app[RUNS]
    if manager.closing:
        return _refuse("shutdown", "the server is shutting down", 503)
    origin = request.headers.get("Origin")
    if origin is not None and not request.app[ORIGIN_ALLOWED](origin, {"HTTP_HOST": request.host}):
        # A page of another site must not run pipelines in its visitors' name.
        return _refuse("forbidden_origin", "requests from this browser origin are not allowed", 403)
    if settings.token is not None:
        given = request.headers.get("Authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode("utf-8", "replace"),
            settings.token.get_secret_value().encode(),
        ):
            return web.json_response(
                fail(error("unauthorized", "send the token as 'Authorization: Bearer <token>'")),
                status=401, headers={"WWW-Authenticate": "Bearer"})
    # The client's address as the other per-address limits see it (a trusted proxy's
    # X-Forwarded-For included).
    address = request.app[ADMISSION].address_of(request)
    if not request.app[RUN_BUCKETS].get(address).take():
        return _refuse("rate_limited", "too many runs from this address; slow down", 429)
    if len(runs) >= settings.max_http_runs:
        return _refuse("busy", f"{settings.max_http_runs} HTTP runs are running; try later", 503)
    if request.content_length is not None and request.content_length > settings.max_message_bytes:
        return _refuse("invalid_payload", "body too large", 413)
    body = bytearray()
    while chunk := await request.content.read(65_536):  # a chunked body has no length
        body += chunk
        if len(body) > settings.max_message_bytes:
            return _refuse("invalid_payload", "body too large", 413)
    try:
        payload = loads_checked(bytes(body))
        check_payload(payload, max_depth=settings.max_payload_depth, path="body")
    except PayloadProblem as problem:
        return _refuse("invalid_payload", problem.message, 400, path=problem.path)
    except ValueError as exc:
        return _refuse("invalid_payload", f"body is not JSON: {exc}", 400)
    spec, options = payload, None
    if isinstance(payload, dict) and "spec" in payload:
        unknown = set(payload) - {"spec", "options"}
        if unknown:
            return _refuse("invalid_payload", f"unknown field {sorted(unknown)[0]!r}; the body is "
                           "a spec or {\"spec\", \"options\"}", 400, path=sorted(unknown)[0])
        spec, options = payload["spec"], payload.get("options")
    if not isinstance(spec, dict):
        return _refuse("invalid_payload", "the spec must be a JSON object", 400, path="spec")
    try:
        opts = HttpRunOptions.model_validate(options or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return _refuse("invalid_payload", f"options: {first['msg']}", 400,
                       path="options" + (f".{where}" if where else ""))
    pipeline_id = uuid.uuid4().hex[:16]
    errors = ErrorLines(settings.max_error_events_per_second, manager.stats)
    try:
        plumber = manager.build(spec, name=pipeline_id, on_item_error=errors.add_item_error)
    except PipelineError as exc:
        manager.stats.errors.labels(exc.to_dict()["code"]).inc()
        return _json(fail(exc.to_dict()), 422)
    response = web.StreamResponse(headers={
        "Content-Type": NDJSON, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "X-Pipeline-Id": pipeline_id,
    })
    run = HttpRun(request, plumber, pipeline_id, opts, response, errors)
    runs.add(run)
    try:
        await response.prepare(request)
        await run.stream()
    except ConnectionError:
        await run.stop("disconnect")
    finally:
        runs.discard(run)
        run.finished.set()
    return response


async def _end_runs(app: web.Application) -> None:
    """Shutdown: end every HTTP run (its client gets the done line) before connections close."""
    held: set[HttpRun] = app[RUNS]
    runs = list(held)
    if not runs:
        return
    await asyncio.gather(*(run.stop("shutdown") for run in runs))
    pending = [asyncio.ensure_future(run.finished.wait()) for run in runs]
    _, late = await asyncio.wait(pending, timeout=app[SETTINGS].shutdown_timeout * 0.3)
    for task in late:
        task.cancel()


def running_http_runs(app: web.Application) -> int:
    """How many HTTP runs are streaming now."""
    return len(app[RUNS])


def setup_http_runs(app: web.Application, origin_allowed: OriginCheck) -> None:
    """Add `POST /api/runs` and its shutdown hook to the service app (after app[SESSIONS]).

    :param origin_allowed: the socket.io origin check, applied to browsers' `Origin` headers.
    """
    app[ORIGIN_ALLOWED] = origin_allowed
    held: set[HttpRun] = set()
    app[RUNS] = held
    settings = app[SETTINGS]
    app[RUN_BUCKETS] = BucketTable(settings.http_runs_per_second, settings.http_run_burst)
    manager = app[SESSIONS]
    # The running-pipelines gauge counts HTTP runs too.
    manager.stats.running.set_function(lambda: manager.running() + len(held))
    app.router.add_post("/api/runs", post_run)
    app.on_shutdown.append(_end_runs)
