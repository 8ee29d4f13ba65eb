"""A registry with the resources its coroutines share: `CoroutinePlugin(registry, lifespan)`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from pipelines.registry import Registry

__all__ = ["CoroutinePlugin", "Lifespan"]

#: Opens the resources (an HTTP client session, a pool) before the first pipeline runs and closes
#: them after the last one: an `@asynccontextmanager` function taking no arguments.
Lifespan = Callable[[], AbstractAsyncContextManager[None]]


@dataclass(frozen=True, slots=True)
class CoroutinePlugin:
    """Coroutines to serve, and optionally the lifespan of what they share.

    The service enters `lifespan()` at start-up (before it accepts a connection) and leaves it at
    shutdown (after every pipeline ended); a worker process does the same around its runs.
    """

    registry: Registry
    lifespan: Lifespan | None = None
