"""The socket.io events, every one behind the same guard.

The guard (`_guarded`) is the only way a client event reaches our code. It checks, in order:
the session exists, the per-session token bucket, for `process_msg`/`validate` the client
address's turn and CPU share (see `admission`; their check and validation time is charged to
it), the in-flight cap, the argument count, and every argument's shape (`check_payload`: finite
numbers, valid strings, bounded depth). Any
failure, and any exception in the handler itself, becomes an `{"ok": false, "error": ...}` ack
plus one `pipeline_error` event, and one escaped, truncated log line.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio  # type: ignore[import-untyped]

from pipelines.errors import PipelineError

from .admission import Admission
from .payload import INVALID_EVENT, OVER_BUDGET_EVENT, PayloadProblem, check_payload
from .protocol import code_label, error, fail
from .session import Session, SessionManager, SessionRefused, oneline
from .wire import EVENTS

__all__ = ["register_handlers", "validate_spec"]

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[dict[str, Any]]]

#: Codes a flooding client triggers over and over: reported (event + log) once a second.
_FLOOD_CODES = frozenset({"rate_limited", "unknown_event"})


def _arity(lo: int, hi: int) -> str:
    if lo == hi:
        return f"{lo} argument{'s' if lo != 1 else ''}"
    return f"{lo} to {hi} arguments"


async def _answer_failure(
    session: Session, event: str, err: dict[str, Any], admission: Admission
) -> dict[str, Any]:
    """Tell the client (event + ack) and log once; floods are reported once a second, and log
    lines are metered per client address."""
    code = err["code"]
    manager = session.manager
    manager.stats.errors.labels(code_label(code)).inc()
    if code not in _FLOOD_CODES or not session.throttled(code):
        # A refused request is not an error of the pipeline that may be running: no id, and
        # `event` names the request, so clients can tell the two apart.
        await session.emit("pipeline_error",
                           err | {"pipeline_id": None, "event": event, "terminal": False})
        if admission.may_log(session.remote or "?"):
            logger.warning(
                "sid=%s remote=%s event=%s %s: %s",
                session.sid, oneline(session.remote, 60), oneline(event, 60), code,
                oneline(err["message"]),
            )
    return fail(err)


def _guarded(
    manager: SessionManager,
    admission: Admission,
    event: str,
    handler: Handler,
    *,
    params: tuple[str, ...],
    required: int,
    submission: bool = False,
) -> Callable[..., Awaitable[dict[str, Any]]]:
    settings = manager.settings

    async def answer_failure(
        session: Session, event: str, err: dict[str, Any]
    ) -> dict[str, Any]:
        return await _answer_failure(session, event, err, admission)

    async def guard(sid: str, *args: Any) -> dict[str, Any]:
        session = manager.get(sid)
        if session is None:
            return fail(error("not_connected", "this session is closed"))
        address = session.remote or "?"
        if not session.events.take() or (submission and not session.submissions.take()):
            return await answer_failure(session, event, error(
                "rate_limited", f"too many events from this session; slow down ({event})"))
        if submission:
            async with admission.turn(address):
                return await checked(session, address, args)
        return await checked(session, address, args)

    async def checked(
        session: Session, address: str, args: tuple[Any, ...]
    ) -> dict[str, Any]:
        if submission and not admission.cpu_ready(address):
            return await answer_failure(session, event, error(
                "rate_limited", "this address used its share of validation time; slow down"))
        if session.inflight >= settings.max_inflight_events:
            return await answer_failure(session, event, error(
                "rate_limited", f"{settings.max_inflight_events} events of this session are "
                "still being handled"))
        if not required <= len(args) <= len(params):
            return await answer_failure(session, event, error(
                "bad_arguments",
                f"'{event}' takes {_arity(required, len(params))}, got {len(args)}",
            ))
        started = time.thread_time()
        for name, value in zip(params, args, strict=False):
            try:
                check_payload(value, max_depth=settings.max_payload_depth, path=name)
            except PayloadProblem as problem:
                admission.charge(address, time.thread_time() - started)
                return await answer_failure(session, event, error(
                    "invalid_payload", problem.message, path=problem.path))
        session.inflight += 1
        try:
            answer = await handler(session, *args)
            if submission:  # validation runs synchronously in these handlers: its cost
                admission.charge(address, time.thread_time() - started)
        except Exception as exc:  # the guard is the last line: answer, log one line
            logger.error("sid=%s event=%s handler failed: %s: %s", session.sid, event,
                         type(exc).__name__, oneline(exc))
            logger.debug("handler traceback", exc_info=True)
            answer = fail(error("internal_error", f"'{event}' failed on the server"))
        finally:
            session.inflight -= 1
        if not answer.get("ok"):
            return await answer_failure(session, event, answer["error"])
        return answer

    guard.__name__ = f"on_{event}"
    return guard


def register_handlers(
    sio: socketio.AsyncServer, manager: SessionManager, admission: Admission
) -> None:
    """Attach connect/disconnect, the four client events and the catch-all to `sio`."""
    settings = manager.settings
    token = settings.token.get_secret_value().encode() if settings.token is not None else None
    stats = manager.stats

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        remote: str = environ.get("pipelines.address") or "?"
        refusal: SessionRefused | None = None
        if token is not None:
            given = auth.get("token") if isinstance(auth, dict) else None
            if not isinstance(given, str) or not hmac.compare_digest(
                given.encode("utf-8", "replace"), token
            ):
                refusal = SessionRefused("unauthorized", "a valid token is required")
        if refusal is None:
            try:
                admission.session_opened(remote)
            except SessionRefused as exc:
                refusal = exc
        if refusal is None:
            try:
                manager.open(sid, remote)
            except SessionRefused as exc:
                admission.session_closed(remote)
                refusal = exc
        if refusal is not None:
            manager.stats.connections_refused.labels(refusal.code).inc()
            if admission.may_log(remote):
                logger.warning("connection from %s refused: %s", oneline(remote, 60), refusal)
            raise socketio.exceptions.ConnectionRefusedError(str(refusal))
        logger.debug("sid=%s connected from %s", sid, oneline(remote, 60))

    async def disconnect(sid: str, reason: Any = None) -> None:
        session = manager.get(sid)
        if session is not None:
            admission.session_closed(session.remote or "?")
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
                "rate_limited", "too many events from this session; slow down"), admission)
        if event == OVER_BUDGET_EVENT:
            return await _answer_failure(session, "?", error(
                "rate_limited", "this address used its share of the server's time for decoding "
                "messages; slow down"), admission)
        if event == INVALID_EVENT:
            stats.malformed.labels("undecodable_event").inc()
            reason = args[0] if args and isinstance(args[0], str) else "undecodable message"
            return await _answer_failure(session, "?", error(
                "invalid_payload", f"message could not be decoded: {reason}"), admission)
        known = ", ".join(EVENTS)
        return await _answer_failure(session, event, error(
            "unknown_event", f"unknown event {oneline(event, 60)!r}; events: {known}"), admission)

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("process_msg", _guarded(manager, admission, "process_msg", process_msg,
                                   params=("spec", "options"), required=1, submission=True))
    sio.on("cancel", _guarded(manager, admission, "cancel", cancel, params=("options",),
                              required=0))
    sio.on("validate", _guarded(manager, admission, "validate", validate, params=("spec",),
                                required=1, submission=True))
    sio.on("registry", _guarded(manager, admission, "registry", registry, params=(),
                                required=0))
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
