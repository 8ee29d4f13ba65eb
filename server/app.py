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

from pipelines.registry import Registry

from .admission import ADMISSION, Admission
from .cluster import make_client_manager, setup_cluster, start_manager, stop_manager
from .coroutines.plugin import CoroutinePlugin
from .handlers import register_handlers
from .hosts import host_guard
from .http_runs import setup_http_runs
from .keys import REMOTE, SESSIONS, SETTINGS, SIO
from .payload import SafePacket
from .registries import LoadedCoroutines, load_coroutines
from .remote import RemoteService
from .routes import setup_routes
from .session import SessionManager
from .settings import Settings
from .watchdog import LoopWatchdog
from .wire import install_guard, library_logger

__all__ = [
    "SESSIONS", "SETTINGS", "SIO", "RegistryArg", "build_service", "coroutines_for", "create_app",
    "origin_checker",
]

logger = logging.getLogger(__name__)

#: What `create_app(registry=...)` accepts; None: load what the settings ask for.
RegistryArg = Registry | CoroutinePlugin | LoadedCoroutines | None

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
    # Relative: the package is `server` in a checkout and `pipelines_server` when installed.
    if importlib.util.find_spec(".static_files", __package__) is not None:
        module = importlib.import_module(".static_files", __package__)
        module.setup_static(app)
    else:
        app.router.add_get("/", _placeholder_page)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    manager = app[SESSIONS]
    start_manager(app[SIO])
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
    await stop_manager(sio)
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


def coroutines_for(settings: Settings, registry: RegistryArg) -> LoadedCoroutines:
    """The registry and lifespans a `registry=` argument stands for (None: the settings')."""
    if registry is None:
        return load_coroutines(settings)
    if isinstance(registry, LoadedCoroutines):
        return registry
    plugin = registry if isinstance(registry, CoroutinePlugin) else CoroutinePlugin(registry)
    if not plugin.registry.frozen:
        plugin.registry.freeze()
    return LoadedCoroutines(plugin.registry, (plugin.lifespan,) if plugin.lifespan else ())


def create_app(settings: Settings | None = None, registry: RegistryArg = None) -> web.Application:
    """Build the service: socket.io on /socket.io, the HTTP routes and the page.

    :param settings: the configuration (default: read from PIPELINES_* environment variables).
    :param registry: the coroutines to serve: a `Registry` (frozen here), a `CoroutinePlugin`
        (its lifespan runs with the app) or `LoadedCoroutines`; default: what the settings ask
        for (`server.registries.load_coroutines`).
    :raises RegistryLoadError: the settings name coroutines that cannot be loaded or clash.
    """
    settings = settings if settings is not None else Settings()
    loaded = coroutines_for(settings, registry)
    app = web.Application(client_max_size=settings.max_message_bytes)
    build_service(app, settings, loaded)
    return app


def build_service(app: web.Application, settings: Settings, loaded: LoadedCoroutines) -> None:
    """Add the service (socket.io, routes, page, lifecycle) to a fresh `app` of its own."""
    registry = loaded.registry
    # DNS rebinding: only the allowed Host names reach the service (HTTP 421 otherwise).
    app.middlewares.append(host_guard(settings))
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        # random, single-use ack ids (acks name what they answer: no blind acks), on Redis too
        client_manager=make_client_manager(settings),
        serializer=SafePacket,
        cors_allowed_origins=origin_checker(settings),
        max_http_buffer_size=settings.max_message_bytes,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        logger=library_logger("socketio", settings.log_lines_per_minute, settings.log_burst),
        engineio_logger=library_logger(
            "engineio", settings.log_lines_per_minute, settings.log_burst),
    )
    remote = RemoteService(settings, registry)
    manager = SessionManager(settings, sio, registry, remote.config)
    admission = Admission(settings, manager.stats)
    install_guard(sio, manager, admission)
    sio.attach(app)
    register_handlers(sio, manager, admission)
    app[ADMISSION] = admission
    app[SETTINGS] = settings
    app[SIO] = sio
    app[SESSIONS] = manager
    app[REMOTE] = remote
    setup_routes(app)
    setup_http_runs(app, origin_checker(settings))
    setup_cluster(app)
    _setup_page(app)
    app.on_shutdown.append(_on_shutdown)
    if loaded.lifespans:
        async def plugin_lifespans(_app: web.Application) -> AsyncIterator[None]:
            # Entered before, and left after, the sessions' own lifecycle below.
            async with loaded.running():
                yield

        app.cleanup_ctx.append(plugin_lifespans)
    app.cleanup_ctx.append(_lifecycle)
