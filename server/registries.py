"""Which coroutines a service offers: the built-in ones, `--coroutines` modules and entry points.

`load_registry(settings)` is the one place that composes the service's registry, so that every
process started with the same settings (the web service, a worker) offers exactly the same
coroutines. Three sources, in this order:

1. the built-in coroutines (`server.coroutines`), unless `builtin_coroutines` is off;
2. each `coroutines` entry, `module:attribute` (e.g. `mypkg.nodes:registry`), imported;
3. each entry point of the group `pipelines.coroutines` that an installed package declares,
   unless `entry_point_coroutines` is off (the way pytest finds its plugins).

An attribute is a `pipelines.Registry`, a `CoroutinePlugin` (a registry plus a lifespan that owns
resources such as an `aiohttp.ClientSession`), or a callable that returns one of the two. A name
offered by two sources is refused at start-up with one line naming both (`RegistryConflict`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import RegistryError
from pipelines.registry import Registry

from .coroutines import builtin_plugin
from .coroutines.plugin import CoroutinePlugin, Lifespan
from .settings import Settings

__all__ = [
    "ENTRY_POINT_GROUP",
    "CoroutinePlugin",
    "Lifespan",
    "LoadedCoroutines",
    "RegistryConflict",
    "RegistryLoadError",
    "load_coroutines",
    "load_registry",
    "resolve",
]

logger = logging.getLogger(__name__)

#: The entry-point group installed packages declare their coroutines in.
ENTRY_POINT_GROUP = "pipelines.coroutines"


class RegistryLoadError(RegistryError):
    """A `--coroutines` entry or an entry point could not be loaded (one line says why)."""


class RegistryConflict(RegistryLoadError):
    """Two sources offer a coroutine of the same name."""


@dataclass(frozen=True, slots=True)
class LoadedCoroutines:
    """The composed, frozen registry, the lifespans of its plugins and where each name came from."""

    registry: Registry
    lifespans: tuple[Lifespan, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Enter every plugin's lifespan (in load order); leave them in reverse order."""
        async with AsyncExitStack() as stack:
            for lifespan in self.lifespans:
                await stack.enter_async_context(lifespan())
            yield


def _as_plugin(value: Any, label: str) -> CoroutinePlugin:
    if callable(value) and not isinstance(value, Registry | CoroutinePlugin):
        try:
            value = value()
        except Exception as exc:
            raise RegistryLoadError(
                f"{label}: calling it failed: {type(exc).__name__}: {exc}") from None
    if isinstance(value, Registry):
        return CoroutinePlugin(value)
    if isinstance(value, CoroutinePlugin):
        return value
    raise RegistryLoadError(
        f"{label}: expected a pipelines.Registry or a CoroutinePlugin (or a function returning "
        f"one), got {type(value).__name__}")


def resolve(target: str) -> CoroutinePlugin:
    """Import `module:attribute` (the attribute may be dotted) and return it as a plugin."""
    label = f"--coroutines {target}"
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise RegistryLoadError(f"{label}: expected module:attribute, e.g. mypkg.nodes:registry")
    try:
        value: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise RegistryLoadError(
            f"{label}: cannot import {module_name}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise RegistryLoadError(f"{label}: {module_name} has no attribute {attr}") from None
    return _as_plugin(value, label)


def _entry_points() -> Iterator[tuple[str, CoroutinePlugin]]:
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                     key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        owner = f" of {dist.name}" if dist is not None else ""
        label = f"entry point {ep.name} = {ep.value}{owner}"
        try:
            value = ep.load()
        except Exception as exc:
            raise RegistryLoadError(f"{label}: cannot load: {type(exc).__name__}: {exc}") from None
        yield label, _as_plugin(value, label)


def _sources(settings: Settings) -> Iterator[tuple[str, CoroutinePlugin]]:
    if settings.builtin_coroutines:
        yield "the built-in coroutines", builtin_plugin(settings)
    for target in settings.coroutines:
        yield f"--coroutines {target}", resolve(target)
    if settings.entry_point_coroutines:
        yield from _entry_points()


def load_coroutines(settings: Settings) -> LoadedCoroutines:
    """Compose the registry the settings ask for, with its plugins' lifespans.

    :raises RegistryLoadError: a source cannot be loaded, or two sources offer the same name
        (`RegistryConflict`); the message is one line naming the source(s).
    """
    merged = Registry()
    sources: dict[str, str] = {}
    lifespans: list[Lifespan] = []
    for label, plugin in _sources(settings):
        for name in plugin.registry.names():
            if name in sources:
                raise RegistryConflict(
                    f"coroutine {name!r} is offered twice: by {sources[name]} and by {label}; "
                    "rename one, or leave a source out (--no-builtin-coroutines, "
                    "--no-entry-point-coroutines)")
            info = plugin.registry.get(name)
            assert info is not None and info.kind is not None
            merged.register(info.fn, name=name, kind=info.kind, doc=info.doc)
            sources[name] = label
        if plugin.lifespan is not None:
            lifespans.append(plugin.lifespan)
        logger.debug("%s: %d coroutines", label, len(plugin.registry))
    merged.freeze()
    return LoadedCoroutines(merged, tuple(lifespans), sources)


def load_registry(settings: Settings) -> Registry:
    """The frozen registry the settings ask for (see `load_coroutines`)."""
    return load_coroutines(settings).registry

