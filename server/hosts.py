"""The Host allow-list: a defence against DNS rebinding.

A page on an attacker's domain can re-point that domain at 127.0.0.1 and then talk to a service
on localhost as same-origin; its requests still carry the attacker's name in the Host header.
A server bound to a local address therefore answers only requests whose Host names localhost,
127.0.0.1 or [::1] (any port); bound elsewhere, it answers any Host unless `allowed_hosts` lists
the names. Other requests get HTTP 421 and a one-line body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from .settings import Settings

__all__ = ["LOCAL_HOSTS", "allowed_host_names", "host_guard", "host_name"]

logger = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def allowed_host_names(settings: Settings) -> frozenset[str] | None:
    """The Host names the server answers to (lower case); None: any."""
    if settings.allowed_hosts:
        names = {h.strip().lower().rstrip(".").strip("[]") for h in settings.allowed_hosts}
        return None if "*" in names else frozenset(names)
    bound = settings.host.strip("[]").lower()
    if bound in LOCAL_HOSTS or bound.startswith("127."):
        return LOCAL_HOSTS
    return None


def host_name(header: str) -> str:
    """The name part of a Host header, lower case: `[::1]:8080` -> `::1`, `a.b:80` -> `a.b`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header[1:]
    name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return name.rstrip(".")


def host_guard(settings: Settings) -> Middleware:
    """An aiohttp middleware refusing requests whose Host is not allowed (HTTP 421)."""
    allowed = allowed_host_names(settings)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if allowed is not None:
            header = request.headers.get("Host", "")
            if host_name(header) not in allowed:
                shown = header[:60].encode("unicode_escape", "backslashreplace").decode("ascii")
                logger.debug("refused request for host %r from %s", shown, request.remote)
                return web.Response(
                    status=421, text=f"misdirected request: this server does not answer to "
                    f"host {shown!r} (setting allowed_hosts)\n")
        return await handler(request)

    return guard
