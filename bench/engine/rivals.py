"""The other libraries: aiostream and pypeln, in the settings tried."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .workloads import (
    IO_CONCURRENCY,
    Acc,
    Runner,
    Variant,
    agen_ints,
    agen_items,
    f_bc,
    f_dbl,
    f_fwd,
    f_inc,
    f_io,
    slow_pause,
)

__all__ = ["aio_variants", "pypeln_variants"]

# ----------------------------------------------------------------------------- aiostream


def aio_variants(workload: str) -> list[Variant]:
    from aiostream import pipable_operator, pipe, stream

    def seq_op(fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """A stage written as a pipable aiostream operator (plain async iteration)."""

        @pipable_operator
        async def stage(source: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async with stream.iterate(source).stream() as s:
                async for x in s:
                    yield await fn(x)

        return stage

    def build(kind: str, **kw: Any) -> Runner:
        async def run(n: int, acc: Acc) -> None:
            if kind == "operator":
                maps = [seq_op(f).pipe() for f in _chain_fns(workload)]
            elif kind == "sync":
                maps = [pipe.map(f) for f in _sync_fns(workload)]
            else:
                maps = [pipe.map(f, **kw) for f in _chain_fns(workload)]
            xs: Any = stream.iterate(agen_items(n) if workload == "W4" else agen_ints(n))
            for m in maps:
                xs = xs | m
            async with xs.stream() as s:
                await _drain(workload, acc, s)

        return run

    if workload == "W3":
        return [
            Variant("aiostream", f"map(task_limit={IO_CONCURRENCY})",
                    build("map", task_limit=IO_CONCURRENCY)),
            Variant("aiostream", f"map(task_limit={IO_CONCURRENCY}, ordered=False)",
                    build("map", task_limit=IO_CONCURRENCY, ordered=False)),
        ]
    if workload == "W4":
        return [Variant("aiostream", "map(task_limit=1)", build("map", task_limit=1))]
    return [
        Variant("aiostream", "map(task_limit=1)", build("map", task_limit=1)),
        Variant("aiostream", "map(task_limit=64)", build("map", task_limit=64)),
        Variant("aiostream", "map(task_limit=64, ordered=False)",
                build("map", task_limit=64, ordered=False)),
        # informative only: no queue and no per-stage concurrency, each stage pulls the previous
        # one (plain iteration); and plain functions instead of coroutines
        Variant("aiostream", "async-for operators [pull, no queue]", build("operator"),
                comparable=False),
        Variant("aiostream", "map(sync fn) [no coroutine]", build("sync"), comparable=False),
    ]


def _chain_fns(workload: str) -> list[Callable[[Any], Awaitable[Any]]]:
    if workload == "W1":
        return [f_inc, f_dbl]
    if workload in ("W2", "W2z"):
        return [f_inc, f_bc]
    if workload == "W3":
        return [f_io, f_io, f_io]
    return [f_fwd]


def _sync_fns(workload: str) -> list[Callable[[Any], Any]]:
    if workload == "W1":
        return [lambda x: x + 1, lambda x: x * 2]
    return [lambda x: x + 1, lambda x: (x * 2, x + 3)]


async def _drain(workload: str, acc: Acc, results: Any) -> None:
    """Count what reaches the end of a rival's stream (W4: pausing as the slow sink does)."""
    async for v in results:
        _sink_add(workload, acc, v)
        if workload == "W4":
            await slow_pause(acc.count)


def _sink_add(workload: str, acc: Acc, v: Any) -> None:
    if workload == "W2":  # merge: both branch results are separate items
        acc.count += 2
        acc.total += v[0] + v[1]
    elif workload == "W2z":
        acc.count += 1
        acc.total += v[0] + v[1]
    elif workload == "W4":
        acc.count += 1
        acc.total += len(v)
    else:
        acc.count += 1
        acc.total += v


# -------------------------------------------------------------------------------- pypeln


def pypeln_variants(workload: str) -> list[Variant]:
    import pypeln as pl

    def build(workers: int, maxsize: int) -> Runner:
        async def run(n: int, acc: Acc) -> None:
            st: Any = agen_items(n) if workload == "W4" else agen_ints(n)
            for f in _chain_fns(workload):
                st = pl.task.map(f, st, workers=workers, maxsize=maxsize)
            await _drain(workload, acc, st)

        return run

    if workload == "W3":
        return [
            Variant("pypeln", f"task.map(workers={IO_CONCURRENCY}, maxsize={IO_CONCURRENCY})",
                    build(IO_CONCURRENCY, IO_CONCURRENCY)),
        ]
    if workload == "W4":
        return [Variant("pypeln", "task.map(workers=1, maxsize=64)", build(1, 64))]
    return [
        Variant("pypeln", "task.map(workers=1, maxsize=64)", build(1, 64)),
        Variant("pypeln", "task.map(workers=1, maxsize=0)", build(1, 0)),
        Variant("pypeln", "task.map(workers=4, maxsize=64)", build(4, 64)),
    ]


