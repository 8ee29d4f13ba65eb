"""The service's built-in registry: the coroutines a client can name in a spec out of the box.

One module per family: `demo` (the original demo's `ProcessFunc.*`, kept under their names),
`sources`, `text`, `numbers`, `flow` (filters and flow control), `data` (JSON and CSV), `patterns`
(regular expressions), `hashing`, `batching`, `rate`, `net` (`Net.fetch`, only with an allow-list
of hosts) and `testing` (the faulty `Test.*` nodes, only when the `test_coroutines` setting is
on). Nothing else touches files, processes or the network. `server.registries` composes these
with the coroutines of other packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.registry import Registry

from . import batching, data, demo, flow, hashing, net, numbers, patterns, rate, sources, testing, text
from .demo import DEMO_SLEEPS
from .net import FetchConfig
from .patterns import RegexLimits
from .plugin import CoroutinePlugin, Lifespan

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["DEMO_SLEEPS", "FetchConfig", "RegexLimits", "build_registry", "builtin_plugin"]


def _build(
    demo_sleep_scale: float, test_coroutines: bool, fetch: FetchConfig | None,
    regex_limits: RegexLimits,
) -> tuple[Registry, Lifespan | None]:
    reg = Registry()
    demo.register(reg, demo_sleep_scale)
    sources.register(reg)
    text.register(reg)
    numbers.register(reg)
    flow.register(reg)
    data.register(reg)
    patterns.register(reg, regex_limits)
    hashing.register(reg)
    batching.register(reg)
    rate.register(reg)
    lifespan = net.register(reg, fetch) if fetch is not None and fetch.hosts else None
    if test_coroutines:
        testing.register(reg)
    reg.freeze()
    return reg, lifespan


def build_registry(
    *,
    demo_sleep_scale: float = 1.0,
    test_coroutines: bool = False,
    fetch: FetchConfig | None = None,
    regex_limits: RegexLimits | None = None,
) -> Registry:
    """A frozen registry of the service's coroutines.

    :param demo_sleep_scale: factor on the demo's 3/2/1 s sleeps (tests use a small one).
    :param test_coroutines: also register the faulty `Test.*` nodes (tests only).
    :param fetch: register `Net.fetch` for these hosts (its HTTP session needs the lifespan
        that `builtin_plugin` returns: use that to run it).
    :param regex_limits: the `Regex.*` time and input bounds.
    """
    return _build(demo_sleep_scale, test_coroutines, fetch, regex_limits or RegexLimits())[0]


def builtin_plugin(settings: Settings) -> CoroutinePlugin:
    """The built-in coroutines as the settings configure them, with their shared resources."""
    fetch = FetchConfig(frozenset(h.lower() for h in settings.fetch_hosts),
                        settings.fetch_timeout, settings.fetch_max_bytes)
    registry, lifespan = _build(
        settings.demo_sleep_scale, settings.test_coroutines, fetch,
        RegexLimits(settings.regex_timeout, settings.regex_max_input))
    return CoroutinePlugin(registry, lifespan)
