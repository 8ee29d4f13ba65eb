"""Mount the service into an existing aiohttp application: `setup(app, registry=..., path=...)`.

In the style of aiohttp's own extensions (aiohttp-jinja2, aiohttp-session): the host app keeps its
own routes, middlewares and run loop; `setup` adds, under `path`, the socket.io endpoint
(`<path>/socket.io/`), the HTTP routes (`<path>/api/...`, `<path>/healthz`, `<path>/metrics`)
and the page (`<path>/`). They live in a sub-application, so the host's routes and state are
never touched; aiohttp runs the sub-application's start-up, shutdown and cleanup hooks from the
host's, so the plugins' lifespans open with the host app and every session ends when it shuts down.
"""

from __future__ import annotations

import logging

from aiohttp import web

from .app import RegistryArg, build_service, coroutines_for
from .settings import Settings

__all__ = ["PIPELINES_APP", "setup"]

logger = logging.getLogger(__name__)

#: The mounted service's own application, kept on the host app (`app[PIPELINES_APP]`).
PIPELINES_APP = web.AppKey("pipelines_app", web.Application)


def setup(
    app: web.Application,
    *,
    registry: RegistryArg = None,
    path: str = "/pipelines",
    settings: Settings | None = None,
) -> web.Application:
    """Serve pipelines from `app` under `path`; return the service's sub-application.

    :param app: the host application (not started yet).
    :param registry: the coroutines to serve (as for `create_app`); default: the settings'.
    :param path: the prefix, e.g. "/pipelines" (not "/": use `create_app` for a whole app).
    :param settings: the service's settings (default: read from PIPELINES_* variables). The
        host's own `client_max_size` bounds request bodies; the service checks its
        `max_message_bytes` itself as well.
    :raises ValueError: `path` is empty, "/" or not absolute.
    :raises RegistryLoadError: the settings name coroutines that cannot be loaded or clash.
    """
    prefix = path.rstrip("/")
    if not prefix.startswith("/"):
        raise ValueError(f"path must be an absolute prefix like /pipelines, not {path!r}")
    settings = settings if settings is not None else Settings()
    service = web.Application(client_max_size=settings.max_message_bytes)
    build_service(service, settings, coroutines_for(settings, registry))

    async def to_page(request: web.Request) -> web.StreamResponse:
        # The page's URLs are relative to it: it must be addressed as <prefix>/.
        raise web.HTTPPermanentRedirect(prefix + "/")

    app.router.add_get(prefix, to_page)  # before the sub-app, which would answer 404
    app.add_subapp(prefix, service)
    app[PIPELINES_APP] = service
    logger.debug("pipelines mounted under %s/", prefix)
    return service
