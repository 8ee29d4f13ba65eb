"""Engine benchmark: ``pipelines`` against hand-written asyncio queues, aiostream and pypeln.

Workloads (run interleaved in one process, several rounds, alternating implementations):

- W1  linear chain ``src -> x+1 -> x*2 -> sink`` of 200,000 ints.
- W2  diamond ``src -> a -> (b, c) -> sink``, the sink merging both branches (the original demo's
      shape: ``aggregate_inputs: false``), 100,000 ints, so the sink sees 200,000 items.
- W2z the same diamond with the default zip sink (``aggregate_inputs: true``): one ``(b, c)``
      pair per item.
- W3  three IO-bound stages of ``asyncio.sleep(0.01)``, concurrency 100, 5,000 items; reported as
      a share of the ideal wall time ``N * 0.01 / 100 + 0.02`` s.
- W4  peak RSS growth while 1,000,000 items of 100 bytes go through a slow sink (a fresh
      subprocess per implementation, RSS sampled every 2 ms).

Every run checks the count and the sum of what reached the sink, so nothing wins by dropping
items. Run ``python bench/engine_bench.py`` (``--quick`` for small inputs, ``--help`` for more).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib.metadata
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["main"]

QUEUE_SIZE = 64  # hand-written reference: bounded asyncio.Queue(64) per edge
IO_DELAY = 0.01
IO_CONCURRENCY = 100
ITEM_BYTES = 100

FULL_N = {"W1": 200_000, "W2": 100_000, "W2z": 100_000, "W3": 5_000, "W4": 1_000_000}
QUICK_N = {"W1": 5_000, "W2": 2_500, "W2z": 2_500, "W3": 500, "W4": 10_000}
WORKLOADS = ("W1", "W2", "W2z", "W3", "W4")
DESCRIPTIONS = {
    "W1": "chain src->x+1->x*2->sink",
    "W2": "diamond src->a->(b,c)->merge sink",
    "W2z": "diamond src->a->(b,c)->zip sink",
    "W3": "3 x sleep(0.01), concurrency 100",
    "W4": "peak RSS, 100 B items, slow sink",
}


# --------------------------------------------------------------------------- expected results


def expected(workload: str, n: int) -> tuple[int, int]:
    """(count, sum) that must reach the sink."""
    if workload == "W1":  # (i + 1) * 2
        return n, n * (n + 1)
    if workload in ("W2", "W2z"):  # a = i + 1; b = 2a; c = a + 3; sink adds b + c
        total = 3 * n * (n + 1) // 2 + 3 * n
        return (2 * n if workload == "W2" else n), total
    if workload == "W3":  # three stages of x + 1
        return n, n * (n - 1) // 2 + 3 * n
    if workload == "W4":  # the sink adds len(item)
        return n, n * ITEM_BYTES
    raise ValueError(workload)


@dataclass
class Acc:
    """What reached the sink."""

    count: int = 0
    total: int = 0


def make_item(i: int) -> bytes:
    """A distinct 100-byte item (distinct objects, so nothing is shared between items)."""
    return i.to_bytes(8, "little") * 12 + b"\x00\x00\x00\x00"


# --------------------------------------------------------------------------- stage functions
# Plain async functions, shared by the hand-written, aiostream and pypeln variants.


async def f_inc(x: int) -> int:
    return x + 1


async def f_dbl(x: int) -> int:
    return x * 2


async def f_plus3(x: int) -> int:
    return x + 3


async def f_io(x: int) -> int:
    await asyncio.sleep(IO_DELAY)
    return x + 1


async def f_fwd(x: bytes) -> bytes:
    return x


async def f_bc(x: int) -> tuple[int, int]:
    """Both diamond branches in one stage (for libraries without broadcast)."""
    return await f_dbl(x), await f_plus3(x)


async def slow_pause(count: int) -> None:
    """The W4 slow sink: yield every item, sleep 1 ms every 1000 items."""
    if count % 1000 == 0:
        await asyncio.sleep(0.001)
    else:
        await asyncio.sleep(0)


async def agen_ints(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def agen_items(n: int) -> AsyncIterator[bytes]:
    for i in range(n):
        yield make_item(i)


# --------------------------------------------------------------------------- variants

Runner = Callable[[int, Acc], Awaitable[None]]


@dataclass(frozen=True)
class Variant:
    impl: str
    setting: str
    run: Runner
    comparable: bool = True  # False: informative only, never the "best setting"


# ----------------------------------------------------------------- hand-written asyncio (floor)

_END = object()


async def _ref_source(n: int, outs: list[asyncio.Queue[Any]], items: bool = False) -> None:
    for i in range(n):
        x = make_item(i) if items else i
        for q in outs:
            await q.put(x)
    for q in outs:
        await q.put(_END)


async def _ref_stage(
    fn: Callable[[Any], Awaitable[Any]], inq: asyncio.Queue[Any], outs: list[asyncio.Queue[Any]]
) -> None:
    while True:
        x = await inq.get()
        if x is _END:
            for q in outs:
                await q.put(_END)
            return
        y = await fn(x)
        for q in outs:
            await q.put(y)


async def _ref_workers(
    fn: Callable[[Any], Awaitable[Any]],
    inq: asyncio.Queue[Any],
    outq: asyncio.Queue[Any],
    workers: int,
) -> None:
    """One stage as ``workers`` tasks (unordered); the last one to finish forwards the end."""
    left = [workers]

    async def worker() -> None:
        while True:
            x = await inq.get()
            if x is _END:
                await inq.put(_END)  # let the sibling workers see it too
                left[0] -= 1
                if left[0] == 0:
                    await outq.put(_END)
                return
            await outq.put(await fn(x))

    async with asyncio.TaskGroup() as tg:
        for _ in range(workers):
            tg.create_task(worker())


async def _ref_task_per_item(
    fn: Callable[[Any], Awaitable[Any]],
    inq: asyncio.Queue[Any],
    outq: asyncio.Queue[Any],
    limit: int,
) -> None:
    """One stage as a task per item, at most ``limit`` at a time (unordered): what it costs to
    start a task for every item, next to ``_ref_workers``."""
    sem = asyncio.Semaphore(limit)

    async def one(x: Any) -> None:
        try:
            await outq.put(await fn(x))
        finally:
            sem.release()

    async with asyncio.TaskGroup() as tg:
        while True:
            x = await inq.get()
            if x is _END:
                break
            await sem.acquire()
            tg.create_task(one(x))
    await outq.put(_END)


async def _ref_sink(inq: asyncio.Queue[Any], acc: Acc, ends: int = 1, slow: bool = False) -> None:
    while True:
        x = await inq.get()
        if x is _END:
            ends -= 1
            if ends == 0:
                return
            continue
        acc.count += 1
        if slow:
            acc.total += len(x)
            await slow_pause(acc.count)
        else:
            acc.total += x


async def _ref_zip_sink(qb: asyncio.Queue[Any], qc: asyncio.Queue[Any], acc: Acc) -> None:
    while True:
        b = await qb.get()
        c = await qc.get()
        if b is _END or c is _END:
            return
        acc.count += 1
        acc.total += b + c


def _qs(k: int) -> list[asyncio.Queue[Any]]:
    return [asyncio.Queue(QUEUE_SIZE) for _ in range(k)]


async def ref_w1(n: int, acc: Acc) -> None:
    q1, q2, q3 = _qs(3)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_ref_source(n, [q1]))
        tg.create_task(_ref_stage(f_inc, q1, [q2]))
        tg.create_task(_ref_stage(f_dbl, q2, [q3]))
        tg.create_task(_ref_sink(q3, acc))


async def ref_w2(n: int, acc: Acc) -> None:
    qa, qb, qc, qm = _qs(4)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_ref_source(n, [qa]))
        tg.create_task(_ref_stage(f_inc, qa, [qb, qc]))
        tg.create_task(_ref_stage(f_dbl, qb, [qm]))
        tg.create_task(_ref_stage(f_plus3, qc, [qm]))
        tg.create_task(_ref_sink(qm, acc, ends=2))


async def ref_w2z(n: int, acc: Acc) -> None:
    qa, qb, qc, qb2, qc2 = _qs(5)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_ref_source(n, [qa]))
        tg.create_task(_ref_stage(f_inc, qa, [qb, qc]))
        tg.create_task(_ref_stage(f_dbl, qb, [qb2]))
        tg.create_task(_ref_stage(f_plus3, qc, [qc2]))
        tg.create_task(_ref_zip_sink(qb2, qc2, acc))


async def _ref_w3_chain(stage: Any, n: int, acc: Acc) -> None:
    """Source, three IO stages run by `stage` (workers or task per item), sink."""
    q1, q2, q3, q4 = _qs(4)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_ref_source(n, [q1]))
        for q_in, q_out in ((q1, q2), (q2, q3), (q3, q4)):
            tg.create_task(stage(f_io, q_in, q_out, IO_CONCURRENCY))
        tg.create_task(_ref_sink(q4, acc))


async def ref_w3(n: int, acc: Acc) -> None:
    await _ref_w3_chain(_ref_workers, n, acc)


async def ref_w3_task_per_item(n: int, acc: Acc) -> None:
    await _ref_w3_chain(_ref_task_per_item, n, acc)


async def ref_w4(n: int, acc: Acc) -> None:
    q1, q2 = _qs(2)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_ref_source(n, [q1], items=True))
        tg.create_task(_ref_stage(f_fwd, q1, [q2]))
        tg.create_task(_ref_sink(q2, acc, slow=True))


async def ref_w4_unbounded(n: int, acc: Acc) -> None:
    """The control for W4: unbounded queues, so the RSS meter must see the items pile up."""
    q1: asyncio.Queue[Any] = asyncio.Queue()
    q2: asyncio.Queue[Any] = asyncio.Queue()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_ref_source(n, [q1], items=True))
        tg.create_task(_ref_stage(f_fwd, q1, [q2]))
        tg.create_task(_ref_sink(q2, acc, slow=True))


# The hand-written reference as one would write it for speed: take with get_nowait() while the
# queue holds items and put with put_nowait() while it has room (an await only when it must
# wait), one task per stage. This is the reference the targets are measured against.


async def _fast_source(n: int, outs: list[asyncio.Queue[Any]], items: bool = False) -> None:
    for i in range(n):
        x = make_item(i) if items else i
        for q in outs:
            if q.full():
                await q.put(x)
            else:
                q.put_nowait(x)
    for q in outs:
        await q.put(_END)


async def _fast_stage(
    fn: Callable[[Any], Awaitable[Any]], inq: asyncio.Queue[Any], outs: list[asyncio.Queue[Any]]
) -> None:
    while True:
        x = inq.get_nowait() if not inq.empty() else await inq.get()
        if x is _END:
            for q in outs:
                await q.put(_END)
            return
        y = await fn(x)
        for q in outs:
            if q.full():
                await q.put(y)
            else:
                q.put_nowait(y)


async def _fast_sink(inq: asyncio.Queue[Any], acc: Acc, ends: int = 1, slow: bool = False) -> None:
    while True:
        x = inq.get_nowait() if not inq.empty() else await inq.get()
        if x is _END:
            ends -= 1
            if ends == 0:
                return
            continue
        acc.count += 1
        if slow:
            acc.total += len(x)
            await slow_pause(acc.count)
        else:
            acc.total += x


async def _fast_zip_sink(qb: asyncio.Queue[Any], qc: asyncio.Queue[Any], acc: Acc) -> None:
    while True:
        b = qb.get_nowait() if not qb.empty() else await qb.get()
        c = qc.get_nowait() if not qc.empty() else await qc.get()
        if b is _END or c is _END:
            return
        acc.count += 1
        acc.total += b + c


async def fast_w1(n: int, acc: Acc) -> None:
    q1, q2, q3 = _qs(3)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_fast_source(n, [q1]))
        tg.create_task(_fast_stage(f_inc, q1, [q2]))
        tg.create_task(_fast_stage(f_dbl, q2, [q3]))
        tg.create_task(_fast_sink(q3, acc))


async def fast_w2(n: int, acc: Acc) -> None:
    qa, qb, qc, qm = _qs(4)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_fast_source(n, [qa]))
        tg.create_task(_fast_stage(f_inc, qa, [qb, qc]))
        tg.create_task(_fast_stage(f_dbl, qb, [qm]))
        tg.create_task(_fast_stage(f_plus3, qc, [qm]))
        tg.create_task(_fast_sink(qm, acc, ends=2))


async def fast_w2z(n: int, acc: Acc) -> None:
    qa, qb, qc, qb2, qc2 = _qs(5)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_fast_source(n, [qa]))
        tg.create_task(_fast_stage(f_inc, qa, [qb, qc]))
        tg.create_task(_fast_stage(f_dbl, qb, [qb2]))
        tg.create_task(_fast_stage(f_plus3, qc, [qc2]))
        tg.create_task(_fast_zip_sink(qb2, qc2, acc))


async def fast_w4(n: int, acc: Acc) -> None:
    q1, q2 = _qs(2)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_fast_source(n, [q1], items=True))
        tg.create_task(_fast_stage(f_fwd, q1, [q2]))
        tg.create_task(_fast_sink(q2, acc, slow=True))


#: the reference of each workload (W3: the worker pool, a share of ideal either way)
REF = {"W1": fast_w1, "W2": fast_w2, "W2z": fast_w2z, "W3": ref_w3, "W4": fast_w4}
#: the plain hand-written chain (an await on every get and put), shown as a labelled variant
PLAIN = {"W1": ref_w1, "W2": ref_w2, "W2z": ref_w2z, "W4": ref_w4}


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
                async for v in s:
                    _sink_add(workload, acc, v)
                    if workload == "W4":
                        await slow_pause(acc.count)

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
            async for v in st:
                _sink_add(workload, acc, v)
                if workload == "W4":
                    await slow_pause(acc.count)

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


# -------------------------------------------------------------------------------- pipelines


def engine_available() -> str | None:
    """None when ``from pipelines import Plumber`` works, else the reason."""
    try:
        from pipelines import Plumber  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not ready yet"
        return f"{type(exc).__name__}: {exc}"
    return None


def engine_spec(
    workload: str, n: int, acc: Acc, props: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The workload in the original graph-spec format, its sink counting into ``acc``;
    ``props`` go on every node."""
    p = dict(props or {})

    async def src(self: Any, output_q: Any, n: int) -> None:
        for i in range(n):
            await output_q.put(i)

    async def src_items(self: Any, output_q: Any, n: int) -> None:
        for i in range(n):
            await output_q.put(make_item(i))

    async def inc(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0] + 1

    async def dbl(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0] * 2

    async def plus3(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0] + 3

    async def io(self: Any, q_elt: tuple[Any, ...]) -> Any:
        await asyncio.sleep(IO_DELAY)
        return q_elt[0] + 1

    async def fwd(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0]

    async def sink(self: Any, q_elt: tuple[Any, ...]) -> None:
        acc.count += 1
        acc.total += q_elt[0]

    async def zip_sink(self: Any, q_elt: tuple[Any, ...]) -> None:
        acc.count += 1
        acc.total += q_elt[0] + q_elt[1]

    async def slow_sink(self: Any, q_elt: tuple[Any, ...]) -> None:
        acc.count += 1
        acc.total += len(q_elt[0])
        await slow_pause(acc.count)

    def node(coro: Any, extra: dict[str, Any] | None = None, **args: Any) -> dict[str, Any]:
        d: dict[str, Any] = {"coro": coro}
        if args:
            d["args"] = args
        props_here = {**p, **(extra or {})}
        if props_here:
            d["properties"] = props_here
        return d

    if workload == "W1":
        nodes = {"src": node(src, n=n), "inc": node(inc), "dbl": node(dbl), "sink": node(sink)}
        graph: dict[str, Any] = {"src": ("inc",), "inc": ("dbl",), "dbl": ("sink",), "sink": None}
    elif workload in ("W2", "W2z"):
        merge = workload == "W2"
        nodes = {
            "src": node(src, n=n), "a": node(inc), "b": node(dbl), "c": node(plus3),
            "sink": node(sink, {"aggregate_inputs": False}) if merge else node(zip_sink),
        }
        graph = {"src": ("a",), "a": ("b", "c"), "b": ("sink",), "c": ("sink",), "sink": None}
    elif workload == "W3":
        io_props = {"concurrency": IO_CONCURRENCY}
        nodes = {
            "src": node(src, n=n), "io1": node(io, io_props), "io2": node(io, io_props),
            "io3": node(io, io_props), "sink": node(sink),
        }
        graph = {"src": ("io1",), "io1": ("io2",), "io2": ("io3",), "io3": ("sink",),
                 "sink": None}
    elif workload == "W4":
        nodes = {"src": node(src_items, n=n), "fwd": node(fwd), "sink": node(slow_sink)}
        graph = {"src": ("fwd",), "fwd": ("sink",), "sink": None}
    else:
        raise ValueError(workload)
    return {"nodes": nodes, "graph": graph}


async def run_engine(
    workload: str, n: int, acc: Acc, props: dict[str, Any] | None = None
) -> Any:
    from pipelines import Plumber

    spec = engine_spec(workload, n, acc, props)
    # exactly the documented library call; results are not collected by default (collect=False),
    # the sinks count what reaches them
    report = await Plumber(spec, coro_map=lambda x: x).run()
    status = getattr(getattr(report, "status", None), "value", getattr(report, "status", None))
    if status not in (None, "completed"):
        raise RuntimeError(f"pipelines run ended with status {status!r}: {report!r}")
    return report


def engine_variants(workload: str) -> list[Variant]:
    def build(props: dict[str, Any] | None) -> Runner:
        async def run(n: int, acc: Acc) -> None:
            await run_engine(workload, n, acc, props)

        return run

    out = [Variant("pipelines", "default properties", build(None))]
    if workload in ("W1", "W2", "W2z"):
        out.append(Variant("pipelines", "concurrency=1 [variant]", build({"concurrency": 1}),
                           comparable=False))
    return out


# --------------------------------------------------------------------------- measurement


@dataclass
class Samples:
    variant: Variant
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pruned: bool = False


LOOP = ["asyncio"]  # the event loop every run uses: "asyncio" or "uvloop" (--loop)


def run_loop(main: Any) -> Any:
    """asyncio.run(main), on uvloop when --loop uvloop was given."""
    if LOOP[0] == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def run_once(variant: Variant, workload: str, n: int) -> tuple[float, str | None]:
    """Run one variant once in a fresh event loop; (wall seconds, error or None)."""
    acc = Acc()

    async def timed() -> float:
        t0 = time.perf_counter()
        await variant.run(n, acc)
        return time.perf_counter() - t0

    gc.collect()
    try:
        seconds = run_loop(timed())
    except Exception as exc:  # noqa: BLE001 - a broken implementation is reported, not fatal
        return float("nan"), f"{type(exc).__name__}: {exc}"[:300]
    want = expected(workload, n)
    if (acc.count, acc.total) != want:
        return seconds, (f"wrong result: count/sum {acc.count}/{acc.total}, "
                         f"expected {want[0]}/{want[1]}")
    return seconds, None


def variants_for(workload: str, impls: set[str]) -> list[Variant]:
    out: list[Variant] = []
    if "asyncio" in impls:
        out.append(Variant("asyncio", "Queue(64) fast path, task per stage"
                           if workload != "W3" else f"Queue(64), {IO_CONCURRENCY} workers/stage",
                           REF[workload]))
        if workload in PLAIN:
            out.append(Variant("asyncio", "Queue(64), await per item [plain]", PLAIN[workload],
                               comparable=False))
        if workload == "W3":
            out.append(Variant("asyncio", f"task per item, Semaphore({IO_CONCURRENCY}) [info]",
                               ref_w3_task_per_item, comparable=False))
    if "pipelines" in impls and engine_available() is None:
        out += engine_variants(workload)
    if "aiostream" in impls:
        out += aio_variants(workload)
    if "pypeln" in impls:
        out += pypeln_variants(workload)
    return out


def measure(workload: str, n: int, rounds: int, impls: set[str], prune: bool = True) -> list[Samples]:
    """Run every variant ``rounds`` times, interleaved (the order rotates every round).

    With ``prune``, a setting that was slower than a quarter of its own library's best setting
    in round 1 is not run again (it cannot be the best; it keeps its one sample), so that the
    slow settings (aiostream with a task per item, pypeln) do not make a full run take long.
    """
    samples = [Samples(v) for v in variants_for(workload, impls)]
    for r in range(rounds):
        order = samples[r % len(samples):] + samples[: r % len(samples)]
        for s in order:
            if len(s.errors) >= 2 or s.pruned:
                continue  # broken twice, or hopeless: stop spending time on it
            sec, err = run_once(s.variant, workload, n)
            if err:
                s.errors.append(err)
            else:
                s.seconds.append(sec)
        if r == 0 and prune:
            for s in samples:
                mine = [min(o.seconds) for o in samples if o.variant.impl == s.variant.impl
                        and o.variant.comparable and o.seconds]
                if (s.variant.comparable and s.seconds and mine
                        and min(s.seconds) > 4 * min(mine)):
                    s.pruned = True
    return samples


# ------------------------------------------------------------------------------- W4 (RSS)


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # Linux fallback
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def w4_child(impl: str, n: int) -> dict[str, Any]:
    """Run W4 for one implementation in this (fresh) process and report RSS growth."""
    import resource

    variants = {v.impl: v for v in reversed(variants_for("W4", {impl}))}
    variants[W4_CONTROL] = Variant("asyncio", "unbounded Queue() [control]", ref_w4_unbounded,
                                   comparable=False)
    if impl not in variants:
        return {"impl": impl, "error": "not available"}
    variant = variants[impl]
    acc = Acc()
    # warm up imports and the event loop machinery on a tiny run, then take the baseline
    run_loop(variant.run(1000, Acc()))
    gc.collect()
    baseline = _rss_bytes()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [baseline]
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(0.002)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    t0 = time.perf_counter()
    error = None
    try:
        run_loop(variant.run(n, acc))
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"[:300]
    elapsed = time.perf_counter() - t0
    stop.set()
    th.join()
    peak[0] = max(peak[0], _rss_bytes())
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if error is None and (acc.count, acc.total) != expected("W4", n):
        error = f"wrong result: count/sum {acc.count}/{acc.total}"
    return {
        "impl": variant.impl, "setting": variant.setting, "n": n, "elapsed": elapsed,
        "baseline_mb": baseline / 2**20, "growth_mb": (peak[0] - baseline) / 2**20,
        "maxrss_growth_mb": max(0, maxrss_after - maxrss_before) / 2**20, "error": error,
    }


W4_CONTROL = "asyncio-unbounded"


def measure_w4(n: int, impls: list[str]) -> list[dict[str, Any]]:
    out = []
    for impl in [*impls, W4_CONTROL] if "asyncio" in impls else impls:
        if impl == "pipelines" and engine_available() is not None:
            continue
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--w4-child", impl, "--w4-n", str(n),
             "--loop", LOOP[0]],
            capture_output=True, text=True, timeout=600, check=False,
        )
        try:
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            out.append({"impl": impl, "error": f"child exited {proc.returncode}: "
                        f"{proc.stderr.strip()[-300:]}"})
    return out


# ------------------------------------------------------------------------------- reporting


def _best(s: Samples) -> float | None:
    return min(s.seconds) if s.seconds else None


def _fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def machine_info() -> list[str]:
    def ver(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return [
        f"machine: {platform.platform()}, {cpu}, {os.cpu_count()} CPUs",
        f"python:  {sys.version.split()[0]} ({platform.python_implementation()})",
        "libs:    " + ", ".join(f"{p} {ver(p)}" for p in ("pipelines", "aiostream", "pypeln",
                                                           "psutil")),
    ]


@dataclass
class Row:
    workload: str
    impl: str
    setting: str
    best: float | None  # items/s
    median: float | None
    ratio: float | None
    extra: str
    check: str
    comparable: bool
    ok: bool


def summarize(workload: str, n: int, samples: list[Samples]) -> list[Row]:
    ref = next((s for s in samples if s.variant.impl == "asyncio"), None)
    ref_best = _best(ref) if ref else None
    rows = []
    for s in samples:
        best = _best(s)
        rate = n / best if best else None
        med = n / statistics.median(s.seconds) if s.seconds else None
        ratio = (ref_best / best) if (best and ref_best) else None
        extra = ""
        if workload == "W3" and best:
            ideal = n * IO_DELAY / IO_CONCURRENCY + 2 * IO_DELAY
            extra = f"{best:.3f}s = {100 * ideal / best:.0f}% of ideal {ideal:.2f}s"
        check = "ok" if not s.errors else f"FAIL ({len(s.errors)}): {s.errors[0]}"
        if s.pruned:
            check += "; 1 round (>4x slower than this library's best)"
        rows.append(Row(workload, s.variant.impl, s.variant.setting, rate, med, ratio, extra,
                        check, s.variant.comparable, not s.errors))
    return rows


def print_header() -> None:
    hdr = (f"{'workload':<5} {'implementation':<10} {'setting':<38} {'best it/s':>11} "
           f"{'median it/s':>11} {'x ref':>9}  check / notes")
    print(hdr)
    print("-" * len(hdr))


def print_rows(rows: list[Row]) -> None:
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        notes = r.check + (f"; {r.extra}" if r.extra else "")
        print(f"{r.workload:<5} {r.impl:<10} {r.setting[:38]:<38} {_fmt_rate(r.best):>11} "
              f"{_fmt_rate(r.median):>11} {ratio:>9}  {notes}")
    print(flush=True)


def best_per_impl(rows: list[Row], workload: str) -> dict[str, Row]:
    out: dict[str, Row] = {}
    for r in rows:
        if r.workload != workload or not r.comparable or r.best is None or not r.ok:
            continue
        if r.impl not in out or r.best > (out[r.impl].best or 0):
            out[r.impl] = r
    return out


def targets(rows: list[Row], w4: list[dict[str, Any]], ns: dict[str, int]) -> list[str]:
    """The issue's targets, each against the fast-path hand-written reference of the same run."""
    lines = []
    for w in ("W1", "W2", "W2z"):
        if not any(r.workload == w for r in rows):
            continue
        b = best_per_impl(rows, w)
        ours = next((r for r in rows if r.workload == w and r.impl == "pipelines"
                     and r.setting == "default properties"), None)
        if ours is None or ours.best is None:
            lines.append(f"{w}: pipelines not measured")
            continue
        want = 2.0 if w in ("W1", "W2") else None
        rivals = {k: v for k, v in b.items() if k in ("aiostream", "pypeln")}
        ok_rivals = all(ours.best > (v.best or 0) for v in rivals.values())
        verdict = "" if want is None else (
            f" (target >= {want:.1f}x) {'PASS' if (ours.ratio or 0) >= want else 'MISS'}")
        lines.append(
            f"{w}: {ours.ratio or 0:.2f}x the fast-path asyncio reference{verdict}; "
            "faster than rivals' best settings ("
            + ", ".join(f"{k} [{v.setting}] {_fmt_rate(v.best)}" for k, v in rivals.items())
            + f") {'PASS' if ok_rivals else 'MISS'}"
        )
        one = next((r for r in rows if r.workload == w and r.impl == "pipelines"
                    and r.setting.startswith("concurrency=1")), None)
        if one is not None and one.ratio is not None and w in ("W1", "W2"):
            lines.append(f"{w}: concurrency=1 {one.ratio:.2f}x the reference (target >= 1.0x) "
                         f"{'PASS' if one.ratio >= 1.0 else 'MISS'}")
        for r in rows:  # the informative rows, said plainly
            if r.workload == w and not r.comparable and r.impl != "pipelines" and r.best:
                rel = "faster" if ours.best > r.best else "slower"
                lines.append(f"    (info: {rel} than {r.impl} [{r.setting}] "
                             f"{_fmt_rate(r.best)} it/s)")
    w3 = next((r for r in rows if r.workload == "W3" and r.impl == "pipelines"), None)
    ref3 = next((r for r in rows if r.workload == "W3" and r.impl == "asyncio"), None)
    if w3 is not None and w3.best:
        n = ns["W3"]
        ideal = n * IO_DELAY / IO_CONCURRENCY + 2 * IO_DELAY
        share = ideal / (n / w3.best)
        ref_share = ideal / (n / ref3.best) if ref3 is not None and ref3.best else 0.0
        lines.append(f"W3: {100 * share:.0f}% of ideal (target >= the worker pool's "
                     f"{100 * ref_share:.0f}% in this run) "
                     f"{'PASS' if share >= ref_share else 'MISS'}")
    for d in w4:
        if d.get("impl") == "pipelines" and not d.get("error"):
            g = d["growth_mb"]
            lines.append(f"W4: peak RSS growth {g:.1f} MB (target < 20 MB) "
                         f"{'PASS' if g < 20 else 'MISS'}")
    return lines


# ------------------------------------------------------------------------------- profiling


def profile_engine(workload: str, n: int, top: int) -> None:
    """cProfile one run of our engine and print the top functions by internal time."""
    acc = Acc()
    prof = cProfile.Profile()
    prof.enable()
    asyncio.run(run_engine(workload, n, acc))
    prof.disable()
    print(f"profile {workload} n={n}: count/sum {acc.count}/{acc.total}, "
          f"expected {expected(workload, n)}")
    st = pstats.Stats(prof)
    st.sort_stats("tottime").print_stats(top)


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small inputs, one round (smoke run)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per workload (default 3)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="comma-separated subset of " + ",".join(WORKLOADS))
    ap.add_argument("--impls", default="asyncio,pipelines,aiostream,pypeln",
                    help="comma-separated subset of asyncio,pipelines,aiostream,pypeln")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every N by this")
    ap.add_argument("--no-prune", action="store_true",
                    help="run every setting every round (by default a setting >4x slower than "
                    "its library's best is measured once)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    ap.add_argument("--profile", metavar="WORKLOAD",
                    help="cProfile our engine on one workload instead of benchmarking")
    ap.add_argument("--top", type=int, default=35, help="rows printed by --profile")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                    help="event loop for every run (default: asyncio's own)")
    ap.add_argument("--w4-child", metavar="IMPL", help=argparse.SUPPRESS)
    ap.add_argument("--w4-n", type=int, default=FULL_N["W4"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    LOOP[0] = args.loop

    if args.w4_child:
        print(json.dumps(w4_child(args.w4_child, args.w4_n)))
        return 0

    ns = {k: max(10, int(v * args.scale)) for k, v in (QUICK_N if args.quick else FULL_N).items()}
    if args.profile:
        profile_engine(args.profile, ns[args.profile], args.top)
        return 0

    rounds = args.rounds or (1 if args.quick else 3)
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for line in machine_info():
        print(line)
    why = engine_available()
    if why is not None and "pipelines" in impls:
        print(f"note:    pipelines engine not importable ({why}); its rows are skipped")
    print(f"rounds:  {rounds} (interleaved; best and median items/s per setting); "
          f"event loop: {LOOP[0]}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for w in workloads:
        print(f"  {w:<4} {DESCRIPTIONS[w]}, N={ns[w]:,}")
    print()

    rows: list[Row] = []
    w4: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    print_header()
    for w in workloads:
        if w == "W4":
            continue
        samples = measure(w, ns[w], rounds, set(impls), prune=not args.no_prune)
        new_rows = summarize(w, ns[w], samples)
        print_rows(new_rows)
        rows += new_rows
    if "W4" in workloads:
        w4 = measure_w4(ns["W4"], impls)
        print(f"{'W4':<5} {'implementation':<10} {'setting':<38} {'RSS growth':>11} "
              f"{'elapsed':>11}  check / notes")
        for d in w4:
            if d.get("error") and "growth_mb" not in d:
                print(f"{'W4':<5} {d['impl']:<10} {'':<38} {'-':>11} {'-':>11}  FAIL: {d['error']}")
                continue
            check = "ok" if not d.get("error") else f"FAIL: {d['error']}"
            print(f"{'W4':<5} {d['impl']:<10} {d['setting'][:38]:<38} "
                  f"{d['growth_mb']:>8.1f} MB {d['elapsed']:>10.2f}s  {check}; "
                  f"ru_maxrss growth {d['maxrss_growth_mb']:.1f} MB, N={d['n']:,}")

    print()
    print("best comparable setting per implementation:")
    for w in workloads:
        if w == "W4":
            continue
        for impl, r in best_per_impl(rows, w).items():
            ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
            print(f"  {w:<4} {impl:<10} {_fmt_rate(r.best):>10} it/s  {ratio:>6}  [{r.setting}]")
    tlines = targets(rows, w4, ns)
    if tlines:
        print()
        print("targets:")
        for line in tlines:
            print("  " + line)
    print(f"\ntotal bench time {time.perf_counter() - t_start:.1f}s")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_info(), "n": ns, "rounds": rounds,
                       "rows": [r.__dict__ for r in rows], "w4": w4}, f, indent=2)

    failed = [r for r in rows if not r.ok] + [d for d in w4 if d.get("error")]
    if failed:
        print(f"\n{len(failed)} implementation(s) produced wrong results or failed")
        return 1
    if args.strict and any("MISS" in line for line in tlines):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
