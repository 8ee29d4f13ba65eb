"""The socket.io events, every one behind the same guard.

The guard (`_guarded`) is the only way a client event reaches our code. It checks, in order:
the session exists, the per-session token bucket and in-flight cap, the argument count, and
every argument's shape (`check_payload`: finite numbers, valid strings, bounded depth). Any
failure, and any exception in the handler itself, becomes an `{"ok": false, "error": ...}` ack
plus one `pipeline_error` event, and one escaped, truncated log line.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio  # type: ignore[import-untyped]

from pipelines.errors import PipelineError

from .payload import INVALID_EVENT, PayloadProblem, check_payload
from .protocol import code_label, error, fail
from .session import Session, SessionManager, SessionRefused, oneline

__all__ = ["register_handlers", "validate_spec"]

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[dict[str, Any]]]

_EVENTS = ("process_msg", "cancel", "validate", "registry")
#: Codes a flooding client triggers over and over: reported (event + log) once a second.
_FLOOD_CODES = frozenset({"rate_limited", "unknown_event"})


def _arity(lo: int, hi: int) -> str:
    if lo == hi:
        return f"{lo} argument{'s' if lo != 1 else ''}"
    return f"{lo} to {hi} arguments"


async def _answer_failure(session: Session, event: str, err: dict[str, Any]) -> dict[str, Any]:
    """Tell the client (event + ack) and log once; floods are reported once a second."""
    code = err["code"]
    manager = session.manager
    manager.stats.errors.labels(code_label(code)).inc()
    if code not in _FLOOD_CODES or not session.throttled(code):
        # A refused request is not an error of the pipeline that may be running: no id, and
        # `event` names the request, so clients can tell the two apart.
        await session.emit("pipeline_error",
                           err | {"pipeline_id": None, "event": event, "terminal": False})
        logger.warning(
            "sid=%s remote=%s event=%s %s: %s",
            session.sid, oneline(session.remote, 60), oneline(event, 60), code,
            oneline(err["message"]),
        )
    return fail(err)


def _guarded(
    manager: SessionManager,
    event: str,
    handler: Handler,
    *,
    params: tuple[str, ...],
    required: int,
    submission: bool = False,
) -> Callable[..., Awaitable[dict[str, Any]]]:
    settings = manager.settings

    async def guard(sid: str, *args: Any) -> dict[str, Any]:
        session = manager.get(sid)
        if session is None:
            return fail(error("not_connected", "this session is closed"))
        if not session.events.take() or (submission and not session.submissions.take()):
            return await _answer_failure(session, event, error(
                "rate_limited", f"too many events from this session; slow down ({event})"))
        if session.inflight >= settings.max_inflight_events:
            return await _answer_failure(session, event, error(
                "rate_limited", f"{settings.max_inflight_events} events of this session are "
                "still being handled"))
        if not required <= len(args) <= len(params):
            return await _answer_failure(session, event, error(
                "bad_arguments",
                f"'{event}' takes {_arity(required, len(params))}, got {len(args)}",
            ))
        for name, value in zip(params, args, strict=False):
            try:
                check_payload(value, max_depth=settings.max_payload_depth, path=name)
            except PayloadProblem as problem:
                return await _answer_failure(session, event, error(
                    "invalid_payload", problem.message, path=problem.path))
        session.inflight += 1
        try:
            answer = await handler(session, *args)
        except Exception as exc:  # the guard is the last line: answer, log one line
            logger.error("sid=%s event=%s handler failed: %s: %s", sid, event,
                         type(exc).__name__, oneline(exc))
            logger.debug("handler traceback", exc_info=True)
            answer = fail(error("internal_error", f"'{event}' failed on the server"))
        finally:
            session.inflight -= 1
        if not answer.get("ok"):
            return await _answer_failure(session, event, answer["error"])
        return answer

    guard.__name__ = f"on_{event}"
    return guard


def register_handlers(sio: socketio.AsyncServer, manager: SessionManager) -> None:
    """Attach connect/disconnect, the four client events and the catch-all to `sio`."""
    settings = manager.settings
    token = settings.token.get_secret_value().encode() if settings.token is not None else None

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        request = environ.get("aiohttp.request")
        remote = getattr(request, "remote", None)
        refusal: SessionRefused | None = None
        if token is not None:
            given = auth.get("token") if isinstance(auth, dict) else None
            if not isinstance(given, str) or not hmac.compare_digest(
                given.encode("utf-8", "replace"), token
            ):
                refusal = SessionRefused("unauthorized", "a valid token is required")
        if refusal is None:
            try:
                manager.open(sid, remote)
            except SessionRefused as exc:
                refusal = exc
        if refusal is not None:
            manager.stats.connections_refused.labels(refusal.code).inc()
            logger.warning("connection from %s refused: %s", oneline(remote, 60), refusal)
            raise socketio.exceptions.ConnectionRefusedError(str(refusal))
        logger.debug("sid=%s connected from %s", sid, oneline(remote, 60))

    async def disconnect(sid: str, reason: Any = None) -> None:
        await manager.close(sid)
        logger.debug("sid=%s disconnected (%s)", sid, oneline(reason, 60))

    async def process_msg(session: Session, spec: Any, options: Any = None) -> dict[str, Any]:
        return session.start(spec, options)

    async def cancel(session: Session, what: Any = None) -> dict[str, Any]:
        pipeline_id: Any = None
        if isinstance(what, dict):
            pipeline_id = what.get("pipeline_id")
        elif isinstance(what, str):
            pipeline_id = what
        elif what is not None:
            return fail(error("bad_arguments", "cancel takes {'pipeline_id': str} or nothing"))
        return await session.cancel(pipeline_id)

    async def validate(session: Session, spec: Any) -> dict[str, Any]:
        return validate_spec(manager, spec)

    async def registry(session: Session) -> dict[str, Any]:
        return {"ok": True, "coroutines": manager.registry.describe()}

    async def unknown(event: str, sid: str, *args: Any) -> dict[str, Any]:
        session = manager.get(sid)
        if session is None:
            return fail(error("not_connected", "this session is closed"))
        if not session.events.take():
            return await _answer_failure(session, event, error(
                "rate_limited", "too many events from this session; slow down"))
        if event == INVALID_EVENT:
            reason = args[0] if args and isinstance(args[0], str) else "undecodable message"
            return await _answer_failure(session, "?", error(
                "invalid_payload", f"message could not be decoded: {reason}"))
        known = ", ".join(_EVENTS)
        return await _answer_failure(session, event, error(
            "unknown_event", f"unknown event {oneline(event, 60)!r}; events: {known}"))

    eio_connect = sio.eio.handlers["connect"]

    async def admit_connection(eio_sid: str, environ: dict[str, Any]) -> Any:
        # Engine.IO level: a connection that never joins the namespace still costs a socket
        # and a ping task, so connections are capped too (the new one is counted already).
        if len(sio.eio.sockets) > settings.max_connections:
            manager.stats.connections_refused.labels("too_many_connections").inc()
            request = environ.get("aiohttp.request")
            logger.warning("connection from %s refused: %d connections open",
                           oneline(getattr(request, "remote", None), 60),
                           settings.max_connections)
            return False
        return await eio_connect(eio_sid, environ)

    sio.eio.on("connect", admit_connection)
    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("process_msg", _guarded(manager, "process_msg", process_msg,
                                   params=("spec", "options"), required=1, submission=True))
    sio.on("cancel", _guarded(manager, "cancel", cancel, params=("options",), required=0))
    sio.on("validate", _guarded(manager, "validate", validate, params=("spec",), required=1,
                                submission=True))
    sio.on("registry", _guarded(manager, "registry", registry, params=(), required=0))
    sio.on("*", unknown)


def validate_spec(manager: SessionManager, spec: Any) -> dict[str, Any]:
    """The `validate` answer for an already shape-checked payload; nothing runs."""
    if not isinstance(spec, dict):
        return fail(error("invalid_payload", "the spec must be a JSON object", path="spec"))
    try:
        plumber = manager.build(spec)
    except PipelineError as exc:
        return fail(exc.to_dict())
    return {"ok": True, "outputs": plumber.topology["outputs"]}
