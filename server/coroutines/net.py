"""Fetching URLs: `Net.fetch`, only to the hosts an allow-list names (the `fetch_hosts` setting).

Off by default: with an empty allow-list `Net.fetch` is not registered at all, so a client cannot
make the server call its internal network. Redirects are not followed (a 3xx is an item error),
each request has a total timeout, and a body larger than the cap is refused while it is read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from pipelines.processor import Processor
from pipelines.registry import Registry

from .plugin import Lifespan

__all__ = ["FetchConfig", "FetchRefused", "register"]

logger = logging.getLogger(__name__)


class FetchRefused(ValueError):
    """The URL is not allowed (scheme, host) or the answer is not acceptable (status, size)."""


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """What `Net.fetch` may do: the hosts (`host` or `host:port`), timeout and body cap."""

    hosts: frozenset[str]
    timeout: float = 10.0
    max_bytes: int = 1_000_000

    def check(self, url: str) -> str:
        """`url` if its scheme is http(s) and its host (or host:port) is allowed."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise FetchRefused(f"not a URL: {exc}") from None
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise FetchRefused("only http:// and https:// URLs with a host can be fetched")
        if parts.username or parts.password:
            raise FetchRefused("URLs with credentials are not fetched")
        if host not in self.hosts and f"{host}:{port}" not in self.hosts:
            raise FetchRefused(f"host {host!r} is not in the fetch_hosts allow-list")
        return url


def register(reg: Registry, config: FetchConfig) -> Lifespan:
    """Register `Net.fetch`; return the lifespan that owns its HTTP client session."""
    sessions: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=None)  # each fetch has its own asyncio.timeout
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False,
                                         raise_for_status=False) as session:
            sessions.append(session)
            try:
                yield
            finally:
                sessions.remove(session)

    @reg.processor(
        "Net.fetch",
        doc="GETs the URL (the item) from an allowed host: its text, or its JSON (parse='json').",
    )
    async def fetch(
        self: Processor, q_elt: tuple[Any, ...], parse: Literal["text", "json"] = "text",
    ) -> Any:
        url = config.check(str(q_elt[0]))
        if not sessions:
            raise RuntimeError("Net.fetch runs only inside the service (its HTTP session is closed)")
        # The engine runs an item's first step in the node's own task and the rest in a task of
        # the item's: a timeout entered before the first suspension would be bound to (and
        # cancel) the node's task. Suspend once, then time this item alone.
        await asyncio.sleep(0)
        try:
            async with asyncio.timeout(config.timeout):
                return await _get(sessions[0], url, parse)
        except TimeoutError:
            raise FetchRefused(f"no complete answer within {config.timeout} s (fetch_timeout)") \
                from None

    async def _get(session: aiohttp.ClientSession, url: str, parse: str) -> Any:
        async with session.get(url, allow_redirects=False) as response:
            if response.status >= 300:
                raise FetchRefused(f"HTTP {response.status} from {url}")
            if response.content_length is not None and response.content_length > config.max_bytes:
                raise FetchRefused(f"body of {response.content_length} bytes is over the "
                                   f"{config.max_bytes} bytes limit")
            body = bytearray()
            async for chunk in response.content.iter_chunked(65_536):
                body += chunk
                if len(body) > config.max_bytes:
                    raise FetchRefused(f"body is over the {config.max_bytes} bytes limit")
            text = bytes(body).decode(response.get_encoding(), errors="replace")
        return json.loads(text) if parse == "json" else text

    return lifespan
