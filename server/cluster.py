"""Several servers: the socket.io Redis manager and the one cross-server broadcast, `announce`.

With `redis_url` set, python-socketio's `AsyncRedisManager` relays emits between servers. Its
delivery is at most once (Redis pub/sub; nothing is kept while Redis is down), so only
`announce` goes through it: everything per session (results, errors, `done`) is emitted to the
local socket with `ignore_queue=True` and never touches Redis. A Redis that dies does not stop
running pipelines; the manager's listener reconnects by itself, and announcements made meanwhile
reach only this server's clients.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import json
import logging
import time
import uuid
from typing import Any

import socketio  # type: ignore[import-untyped]
from aiohttp import web

from .ackids import RandomAckIds, RandomAckManager
from .keys import SETTINGS, SIO
from .payload import PayloadProblem, check_payload, loads_checked
from .protocol import error, fail
from .settings import Settings

__all__ = ["ANNOUNCE_EVENT", "SERVER_ID", "make_client_manager", "setup_cluster",
           "start_manager", "stop_manager", "stop_listener"]

logger = logging.getLogger(__name__)

#: The event every client of every server gets for `POST /api/announce`.
ANNOUNCE_EVENT = "announce"
#: Names this process in announcements (and in the manager's pub/sub messages).
SERVER_ID = web.AppKey("pipelines_server_id", str)
#: Seconds an announcement may wait on Redis before it is given up (Redis frozen, not dead).
_PUBLISH_TIMEOUT = 3.0
#: Stopping the Redis listener: cancellations at most, and seconds to wait after each.
_STOP_TRIES = 10
_STOP_WAIT = 0.5


class _RedisManager(RandomAckIds, socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, closing the connections a reconnect replaces (the
    library drops them open, which leaks a socket per Redis outage)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closing: set[asyncio.Task[None]] = set()

    def _redis_connect(self) -> None:
        stale = [c for c in (self.pubsub, self.redis) if c is not None]
        super()._redis_connect()
        for conn in stale:
            task = asyncio.get_running_loop().create_task(_close_quietly(conn))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop the listener task and close every connection."""
        task = getattr(self, "thread", None)
        if isinstance(task, asyncio.Future):
            await stop_listener(task)
        await asyncio.gather(*self._closing, return_exceptions=True)
        for conn in (self.pubsub, self.redis):
            if conn is not None:
                await _close_quietly(conn)


async def stop_listener(task: asyncio.Future[Any], tries: int = _STOP_TRIES,
                        wait: float = _STOP_WAIT) -> bool:
    """Cancel `task` and wait until it ends, cancelling it again while it goes on: True once
    it has ended. The Redis client can swallow a cancellation and go back to reading its
    socket (the manager's listener did so in about one quick start and stop of a server in
    twenty), and a server's shutdown must not wait for it forever. After `tries` the task is
    left to the connections' closing (its read then fails) and a warning is logged."""
    for _ in range(tries):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=wait)
    if not task.done():
        logger.warning("the Redis listener did not stop after %d cancellations", tries)
        return False
    if not task.cancelled() and task.exception() is not None:
        logger.debug("the Redis listener ended with %r", task.exception())
    return True


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.aclose()
    except Exception as exc:  # a dead Redis while closing is fine
        logger.debug("closing a Redis connection: %s", exc)


def make_client_manager(settings: Settings) -> socketio.AsyncManager:
    """The Redis manager for `settings.redis_url`, or the in-process one; both draw random,
    single-use ack ids (see `server.ackids`)."""
    if settings.redis_url is None:
        return RandomAckManager()
    if importlib.util.find_spec("redis") is None:
        raise RuntimeError("redis_url is set but the redis package is missing: "
                           "pip install 'pipelines[redis]'")
    return _RedisManager(
        settings.redis_url,
        channel="pipelines",
        logger=logging.getLogger("server.cluster.redis"),
        # A Redis that does not answer the connect must not hold an emit for long; no read
        # timeout, since the manager's pub/sub listener waits idle for as long as it likes.
        redis_options={"socket_connect_timeout": 2.0},
    )


def start_manager(sio: socketio.AsyncServer) -> None:
    """Start the manager with the app, not on the first connection: a server with no client
    yet must already hear the other servers (python-socketio would start it lazily)."""
    if not sio.manager_initialized:
        sio.manager_initialized = True
        sio.manager.initialize()


async def stop_manager(sio: socketio.AsyncServer) -> None:
    """Stop the Redis listener task and close its connections (no-op for the local manager)."""
    if isinstance(sio.manager, _RedisManager):
        await sio.manager.close()


def _json(data: Any, status: int) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, allow_nan=False))


async def post_announce(request: web.Request) -> web.Response:
    """`POST /api/announce` with `Authorization: Bearer <token>` and `{"message": str}`: emit
    `announce` to every client of every server. Refused when no token is configured."""
    settings = request.app[SETTINGS]
    if settings.token is None:
        return _json(fail(error("announce_disabled",
                                "announcements need a configured token (PIPELINES_TOKEN)")), 403)
    given = request.headers.get("Authorization", "")
    expected = ("Bearer " + settings.token.get_secret_value()).encode()
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
        return _json(fail(error("unauthorized", "a valid 'Authorization: Bearer <token>' "
                                "header is required")), 401)
    limit = settings.max_announce_bytes
    # JSON escapes take at most 6 bytes per byte of text (\uXXXX).
    if request.content_length is not None and request.content_length > 6 * limit + 1024:
        return _json(fail(error("invalid_payload", "body too large")), 413)
    try:
        body = loads_checked(await request.read())
        check_payload(body, max_depth=2, path="body")
    except PayloadProblem as problem:
        return _json(fail(error("invalid_payload", problem.message, path=problem.path)), 400)
    except ValueError as exc:
        return _json(fail(error("invalid_payload", f"body is not JSON: {exc}")), 400)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"message"} or not isinstance(message, str) \
            or not message:
        return _json(fail(error("invalid_payload", "body must be {\"message\": non-empty string}",
                                path="message")), 400)
    size = len(message.encode("utf-8"))
    if size > limit:
        return _json(fail(error("invalid_payload", f"message is {size} bytes; at most {limit}",
                                path="message")), 413)
    payload = {"message": message, "server": request.app[SERVER_ID], "at": time.time()}
    sio = request.app[SIO]
    try:
        async with asyncio.timeout(_PUBLISH_TIMEOUT):
            await sio.emit(ANNOUNCE_EVENT, payload)
    except TimeoutError:
        logger.warning("announce: Redis did not take it within %.0f s; sent to local clients "
                       "only", _PUBLISH_TIMEOUT)
    clustered = isinstance(sio.manager, socketio.AsyncRedisManager)
    return _json({"ok": True, "server": payload["server"], "cluster": clustered,
                  "delivery": "at_most_once" if clustered else "local"}, 202)


def setup_cluster(app: web.Application) -> None:
    """Add `POST /api/announce` and this server's id to `app`."""
    app[SERVER_ID] = uuid.uuid4().hex[:12]
    app.router.add_post("/api/announce", post_announce)
