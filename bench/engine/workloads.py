"""The workloads: sizes, what must reach the sink, the stage functions every implementation
shares, and the `Variant` each implementation offers for a workload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

__all__ = [
    "QUEUE_SIZE", "IO_DELAY", "IO_CONCURRENCY", "ITEM_BYTES", "FULL_N", "QUICK_N", "WORKLOADS",
    "DESCRIPTIONS", "expected", "Acc", "make_item", "f_inc", "f_dbl", "f_plus3", "f_io",
    "f_fwd", "f_bc", "slow_pause", "agen_ints", "agen_items", "Runner", "Variant"
]


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


