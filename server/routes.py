"""The HTTP side: registry, schema, validation, health and Prometheus metrics."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from pipelines.spec import GraphSpec

from .admission import ADMISSION
from .handlers import validate_spec
from .http_runs import running_http_runs
from .keys import REMOTE, SESSIONS, SETTINGS
from .payload import PayloadProblem, check_payload, loads_checked
from .protocol import error, fail
from .ratelimit import BucketTable
from .stats import CONTENT_TYPE_LATEST

__all__ = ["setup_routes"]

routes = web.RouteTableDef()

#: Per client address, for `POST /api/validate`.
VALIDATE_BUCKETS = web.AppKey("pipelines_validate_buckets", BucketTable)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, allow_nan=False))


@routes.get("/api/registry")
async def get_registry(request: web.Request) -> web.Response:
    """Every coroutine a spec may name: name, kind, doc, args JSON Schema."""
    return _json({"coroutines": request.app[SESSIONS].registry.describe()})


@routes.get("/api/schema")
async def get_schema(request: web.Request) -> web.Response:
    """The JSON Schema of the graph spec."""
    return _json(GraphSpec.json_schema())


@routes.post("/api/validate")
async def post_validate(request: web.Request) -> web.Response:
    """Validate a spec (the body); same answer as the socket `validate` ack. Nothing runs."""
    settings = request.app[SETTINGS]
    admission = request.app[ADMISSION]
    address = admission.address_of(request)
    if not request.app[VALIDATE_BUCKETS].get(address).take() or not admission.cpu_ready(address):
        return _json(fail(error("rate_limited", "too many validations from this address; "
                                "slow down")), 429)
    if request.content_length is not None and request.content_length > settings.max_message_bytes:
        return _json(fail(error("invalid_payload", "body too large")), 413)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _json(fail(error("invalid_payload", "body too large")), 413)
    started = time.thread_time()
    try:
        spec = loads_checked(body)
        check_payload(spec, max_depth=settings.max_payload_depth, path="spec")
    except PayloadProblem as problem:
        return _json(fail(error("invalid_payload", problem.message, path=problem.path)), 400)
    except ValueError as exc:
        return _json(fail(error("invalid_payload", f"body is not JSON: {exc}")), 400)
    else:
        answer = validate_spec(request.app[SESSIONS], spec)
        return _json(answer, 200 if answer["ok"] else 422)
    finally:
        admission.charge(address, time.thread_time() - started)


@routes.get("/healthz")
async def get_health(request: web.Request) -> web.Response:
    """Liveness: 200 while serving, 503 once shutting down."""
    manager = request.app[SESSIONS]
    status = "shutting_down" if manager.closing else "ok"
    running = manager.running() + running_http_runs(request.app)
    return _json({"status": status, "sessions": len(manager), "pipelines": running},
                 503 if manager.closing else 200)


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app's counters."""
    body = request.app[SESSIONS].stats.render()
    body += (await request.app[REMOTE].worker_metrics()).encode()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_routes(app: web.Application) -> None:
    """Add the HTTP routes to `app`."""
    settings = app[SETTINGS]
    app[VALIDATE_BUCKETS] = BucketTable(settings.http_validations_per_second,
                                        settings.http_validation_burst)
    app.router.add_routes(routes)
