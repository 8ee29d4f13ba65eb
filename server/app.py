"""The app factory: an aiohttp application with the socket.io server, routes and lifecycle."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import socketio  # type: ignore[import-untyped]
from aiohttp import web

from .coroutines import build_registry
from .handlers import register_handlers
from .keys import REMOTE, SESSIONS, SETTINGS, SIO
from .payload import SafePacket
from .remote import RemoteService
from .routes import setup_routes
from .session import SessionManager
from .settings import Settings
from .watchdog import LoopWatchdog

__all__ = ["create_app", "SETTINGS", "SESSIONS", "SIO", "origin_checker"]

logger = logging.getLogger(__name__)

_LOCALHOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_PLACEHOLDER = (
    "<!doctype html><title>pipelines</title><p>pipelines service: the page is not installed; "
    "see /api/registry.</p>\n"
)


def origin_checker(settings: Settings) -> Callable[[str | None, dict[str, Any]], bool]:
    """The engine.io origin check: same origin, configured origins, and (option) localhost."""
    extra = {o.rstrip("/") for o in settings.allowed_origins}
    allow_any = "*" in extra

    def allowed(origin: str | None, environ: dict[str, Any] | None = None) -> bool:
        if origin is None or allow_any:
            return True
        origin = origin.rstrip("/")
        if origin in extra:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https"):
            return False
        if settings.allow_localhost_origins and parts.hostname in _LOCALHOSTS:
            return True
        host = (environ or {}).get("HTTP_HOST")
        return host is not None and parts.netloc == host

    return allowed


async def _placeholder_page(request: web.Request) -> web.Response:
    return web.Response(text=_PLACEHOLDER, content_type="text/html")


def _setup_page(app: web.Application) -> None:
    if importlib.util.find_spec("server.static_files") is not None:
        module = importlib.import_module("server.static_files")
        module.setup_static(app)
    else:
        app.router.add_get("/", _placeholder_page)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    manager = app[SESSIONS]
    watchdog: LoopWatchdog | None = None
    if app[SETTINGS].loop_block_threshold > 0:
        watchdog = LoopWatchdog(app[SETTINGS].loop_block_threshold, manager.report_blocked_loop)
        watchdog.start()
    yield
    if watchdog is not None:
        await watchdog.stop()
    # After on_shutdown and after the HTTP server closed its connections.
    manager, sio = app[SESSIONS], app[SIO]
    await manager.close_all()
    await sio.shutdown()
    await app[REMOTE].close()


async def _on_shutdown(app: web.Application) -> None:
    """SIGTERM/SIGINT: stop admitting, tell every running session, disconnect every socket."""
    manager, sio, settings = app[SESSIONS], app[SIO], app[SETTINGS]
    try:
        async with asyncio.timeout(settings.shutdown_timeout * 0.6):
            await manager.shutdown()
    except TimeoutError:
        logger.warning("shutdown: sessions did not end within %.1f s",
                       settings.shutdown_timeout * 0.6)
    # Close the engine.io sockets still open (clients that ignored the disconnect, half-open
    # handshakes), flushing what was queued for them first, but never waiting on a dead peer.
    sockets = list(sio.eio.sockets.values())
    if sockets:
        done, pending = await asyncio.wait(
            [asyncio.create_task(s.close(reason=sio.eio.reason.SERVER_DISCONNECT))
             for s in sockets],
            timeout=max(0.5, settings.shutdown_timeout * 0.3),
        )
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            logger.warning("shutdown: %d socket(s) did not flush; closed", len(pending))
        for sock in sockets:
            if not sock.closed:
                await sock.close(wait=False, abort=True)
        sio.eio.sockets.clear()


def create_app(settings: Settings | None = None) -> web.Application:
    """Build the service: socket.io on /socket.io, the HTTP routes and the page.

    :param settings: the configuration (default: read from PIPELINES_* environment variables).
    """
    settings = settings if settings is not None else Settings()
    registry = build_registry(
        demo_sleep_scale=settings.demo_sleep_scale, test_coroutines=settings.test_coroutines
    )
    app = web.Application(client_max_size=settings.max_message_bytes)
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        serializer=SafePacket,
        cors_allowed_origins=origin_checker(settings),
        max_http_buffer_size=settings.max_message_bytes,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        logger=False,
        engineio_logger=False,
    )
    sio.attach(app)
    remote = RemoteService(settings, registry)
    manager = SessionManager(settings, sio, registry, remote.config)
    register_handlers(sio, manager)
    app[SETTINGS] = settings
    app[SIO] = sio
    app[SESSIONS] = manager
    app[REMOTE] = remote
    setup_routes(app)
    _setup_page(app)
    app.on_shutdown.append(_on_shutdown)
    app.cleanup_ctx.append(_lifecycle)
    return app
