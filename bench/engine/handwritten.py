"""The hand-written asyncio references: the fast-path chain (the reference the targets are
measured against), the plain one (an await on every get and put), and W3's worker pool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .workloads import (
    IO_CONCURRENCY,
    QUEUE_SIZE,
    Acc,
    f_dbl,
    f_fwd,
    f_inc,
    f_io,
    f_plus3,
    make_item,
    slow_pause,
)

__all__ = [
    "ref_w1", "ref_w2", "ref_w2z", "ref_w3", "ref_w3_task_per_item", "ref_w4",
    "ref_w4_unbounded", "fast_w1", "fast_w2", "fast_w2z", "fast_w4", "REF", "PLAIN"
]

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


async def _ref_w3_chain(stage: Any, n: int, acc: Acc,
                        fns: Sequence[Callable[[Any], Awaitable[Any]]] = (f_io,) * 3) -> None:
    """Source, three IO stages run by `stage` (workers or task per item), sink."""
    q1, q2, q3, q4 = _qs(4)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_ref_source(n, [q1]))
        for fn, (q_in, q_out) in zip(fns, ((q1, q2), (q2, q3), (q3, q4)), strict=True):
            tg.create_task(stage(fn, q_in, q_out, IO_CONCURRENCY))
        tg.create_task(_ref_sink(q4, acc))


async def ref_w3(n: int, acc: Acc,
                 fns: Sequence[Callable[[Any], Awaitable[Any]]] = (f_io,) * 3) -> None:
    """W3's worker pool; `fns`: its three stages (bench/w3_stages.py passes traced ones)."""
    await _ref_w3_chain(_ref_workers, n, acc, fns)


async def ref_w3_task_per_item(n: int, acc: Acc) -> None:
    await _ref_w3_chain(_ref_task_per_item, n, acc)


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


@dataclass(frozen=True)
class _Parts:
    """The tasks a hand-written chain is made of: plain (an await on every get and put) or
    with the fast path."""

    source: Callable[..., Awaitable[None]]
    stage: Callable[..., Awaitable[None]]
    sink: Callable[..., Awaitable[None]]
    zip_sink: Callable[..., Awaitable[None]]


_PLAIN_PARTS = _Parts(_ref_source, _ref_stage, _ref_sink, _ref_zip_sink)
_FAST_PARTS = _Parts(_fast_source, _fast_stage, _fast_sink, _fast_zip_sink)


async def _w1(p: _Parts, n: int, acc: Acc) -> None:
    q1, q2, q3 = _qs(3)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(p.source(n, [q1]))
        tg.create_task(p.stage(f_inc, q1, [q2]))
        tg.create_task(p.stage(f_dbl, q2, [q3]))
        tg.create_task(p.sink(q3, acc))


async def _w2(p: _Parts, n: int, acc: Acc) -> None:
    qa, qb, qc, qm = _qs(4)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(p.source(n, [qa]))
        tg.create_task(p.stage(f_inc, qa, [qb, qc]))
        tg.create_task(p.stage(f_dbl, qb, [qm]))
        tg.create_task(p.stage(f_plus3, qc, [qm]))
        tg.create_task(p.sink(qm, acc, ends=2))


async def _w2z(p: _Parts, n: int, acc: Acc) -> None:
    qa, qb, qc, qb2, qc2 = _qs(5)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(p.source(n, [qa]))
        tg.create_task(p.stage(f_inc, qa, [qb, qc]))
        tg.create_task(p.stage(f_dbl, qb, [qb2]))
        tg.create_task(p.stage(f_plus3, qc, [qc2]))
        tg.create_task(p.zip_sink(qb2, qc2, acc))


async def _w4(p: _Parts, n: int, acc: Acc) -> None:
    q1, q2 = _qs(2)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(p.source(n, [q1], items=True))
        tg.create_task(p.stage(f_fwd, q1, [q2]))
        tg.create_task(p.sink(q2, acc, slow=True))


ref_w1, ref_w2, ref_w2z, ref_w4 = (partial(w, _PLAIN_PARTS) for w in (_w1, _w2, _w2z, _w4))
fast_w1, fast_w2, fast_w2z, fast_w4 = (partial(w, _FAST_PARTS) for w in (_w1, _w2, _w2z, _w4))

#: the reference of each workload (W3: the worker pool, a share of ideal either way)
REF = {"W1": fast_w1, "W2": fast_w2, "W2z": fast_w2z, "W3": ref_w3, "W4": fast_w4}
#: the plain hand-written chain (an await on every get and put), shown as a labelled variant
PLAIN = {"W1": ref_w1, "W2": ref_w2, "W2z": ref_w2z, "W4": ref_w4}


