"""What building a pipeline costs (`Plumber(spec)`: parse, check, derive each coroutine's args
model, make the nodes), for coroutines new to the process and for coroutines built before (a
pipeline built per request); nothing runs."""

from __future__ import annotations

import statistics
import time
from typing import Any

__all__ = ["report_build"]

_SOURCE = '''
async def src(self, output_q, n: int = 10):
    for i in range(n):
        await output_q.put(i)

async def inc(self, q_elt, step: int = 1):
    return q_elt[0] + step

async def dbl(self, q_elt):
    return q_elt[0] * 2

async def sink(self, q_elt):
    return None
'''


def _coroutines(fresh: bool, kept: dict[str, Any]) -> dict[str, Any]:
    """The W1 chain's coroutines: compiled anew (code objects the process has not seen), or
    the ones made the first time."""
    if fresh or not kept:
        ns: dict[str, Any] = {}
        exec(compile(_SOURCE, "<bench-build>", "exec"), ns)  # noqa: S102 - our own source
        if not kept:
            kept.update(ns)
        return ns
    return kept


def _spec(fns: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": {"src": {"coro": fns["src"], "args": {"n": 10}},
                      "inc": {"coro": fns["inc"], "args": {"step": 1}},
                      "dbl": {"coro": fns["dbl"]}, "sink": {"coro": fns["sink"]}},
            "graph": {"src": ["inc"], "inc": ["dbl"], "dbl": ["sink"], "sink": None}}


def report_build(builds: int = 300) -> int:
    """Print the time of one build, best and median of `builds`, each way."""
    from pipelines import Plumber

    kept: dict[str, Any] = {}
    print(f"building the W1 chain (4 nodes) with Plumber(spec), {builds} builds each way; "
          "nothing runs")
    for label, fresh in (("coroutines new to the process", True),
                         ("the same coroutines again", False)):
        times = []
        for _ in range(builds):
            spec = _spec(_coroutines(fresh, kept))
            t0 = time.perf_counter()
            Plumber(spec)
            times.append(time.perf_counter() - t0)
        print(f"  {label:<32} best {1e3 * min(times):.3f} ms   "
              f"median {1e3 * statistics.median(times):.3f} ms")
    return 0
