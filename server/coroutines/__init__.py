"""The service's built-in registry: the only coroutines a client can name in a spec.

Nothing here touches files, the network or processes. One module per family: `demo` (the original
demo's `ProcessFunc.*`, kept under their names), `sources`, `text`, `numbers`, `flow` (filters and
flow control) and `testing` (the faulty `Test.*` nodes, only when the `test_coroutines` setting is
on).
"""

from __future__ import annotations

from pipelines.registry import Registry

from . import demo, flow, numbers, sources, testing, text
from .demo import DEMO_SLEEPS

__all__ = ["build_registry", "DEMO_SLEEPS"]


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
