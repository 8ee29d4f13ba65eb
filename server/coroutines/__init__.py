"""The service's built-in registry: the coroutines a client can name in a spec out of the box.

One module per family: `demo` (the original demo's `ProcessFunc.*`, kept under their names),
`sources`, `text`, `numbers`, `flow` (filters and flow control) and `testing` (the faulty `Test.*`
nodes, only when the `test_coroutines` setting is on). Apart from `Test.*`, nothing here touches
files, processes or the network. `server.registries` composes these with the coroutines of other
packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.registry import Registry

from . import demo, flow, numbers, sources, testing, text
from .demo import DEMO_SLEEPS
from .plugin import CoroutinePlugin

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["DEMO_SLEEPS", "build_registry", "builtin_plugin"]


def build_registry(*, demo_sleep_scale: float = 1.0, test_coroutines: bool = False) -> Registry:
    """A frozen registry of the service's coroutines.

    :param demo_sleep_scale: factor on the demo's 3/2/1 s sleeps (tests use a small one).
    :param test_coroutines: also register the faulty `Test.*` nodes (tests only).
    """
    reg = Registry()
    demo.register(reg, demo_sleep_scale)
    sources.register(reg)
    text.register(reg)
    numbers.register(reg)
    flow.register(reg)
    if test_coroutines:
        testing.register(reg)
    reg.freeze()
    return reg


def builtin_plugin(settings: Settings) -> CoroutinePlugin:
    """The built-in coroutines as the settings configure them, with their shared resources."""
    return CoroutinePlugin(build_registry(
        demo_sleep_scale=settings.demo_sleep_scale, test_coroutines=settings.test_coroutines))
