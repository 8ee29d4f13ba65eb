"""W3 traced stage by stage: our engine and the worker pool, paired round by round.

W3's time is three stages of ``sleep(0.01)`` at concurrency 100; the engine and the pool differ
there by a few milliseconds, which the totals alone cannot place. Each stage here is a plain
``fn(x)`` that stamps when its sleep starts and ends, run by the pool (the bench's own
``ref_w3``) and by the engine (the bench's W3 spec with these stages as its coroutines). It
prints, as medians over the rounds:

- when the k-th sleep of each stage started (ms from the run's start): the ramp-up (#0 to
  #199), the steady state (#1000) and the last item;
- the hand-on of each edge: from an item's sleep ending in one stage to its sleep starting in
  the next (waiting for a free slot included), for the first 100 items, the middle, the last 100;
- the totals, and the engine less the pool round by round.

Each run checks the count and the sum at the sink, as the bench does.

    .venv/bin/python bench/w3_stages.py --loop uvloop --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.engine.handwritten import ref_w3  # noqa: E402
from bench.engine.measure import LOOP, run_loop  # noqa: E402
from bench.engine.ours import run_engine  # noqa: E402
from bench.engine.report import paired_line  # noqa: E402
from bench.engine.workloads import FULL_N, IO_CONCURRENCY, IO_DELAY, Acc, expected  # noqa: E402

#: a stamped sleep: (stage, the item's value, start, end), times from perf_counter
Stamp = tuple[int, int, float, float]
#: the k-th sleep to start in each stage, by k
MARKS = (0, 99, 100, 199, 1000, -1)


def traced_stages(log: list[Stamp]) -> list[Callable[[Any], Awaitable[Any]]]:
    """W3's three stages (``sleep(0.01)``, then ``x + 1``), each stamping into `log`."""

    def stage(k: int) -> Callable[[Any], Awaitable[Any]]:
        async def fn(x: int) -> int:
            t = time.perf_counter()
            await asyncio.sleep(IO_DELAY)
            log.append((k, x, t, time.perf_counter()))
            return x + 1

        return fn

    return [stage(1), stage(2), stage(3)]


async def run_pool(n: int, acc: Acc, log: list[Stamp]) -> None:
    await ref_w3(n, acc, traced_stages(log))


async def run_traced_engine(n: int, acc: Acc, log: list[Stamp]) -> None:
    await run_engine("W3", n, acc, stages=traced_stages(log))


class Run:
    """One traced run: its wall time and its stamps, from the run's start."""

    def __init__(self, seconds: float, stamps: list[Stamp]) -> None:
        self.seconds = seconds
        self.stamps = stamps

    def starts(self, stage: int) -> list[float]:
        return sorted(a for k, _, a, _ in self.stamps if k == stage)

    def hand_on(self, stage: int) -> list[float]:
        """Per item, in the order the items left `stage`: its next sleep's start less its end
        here (an item leaving stage s with value x + 1 starts s + 1 as x + 1)."""
        ends = {x: b for k, x, _, b in self.stamps if k == stage}
        starts = {x: a for k, x, a, _ in self.stamps if k == stage + 1}
        return [starts[x + 1] - ends[x] for x in sorted(ends, key=ends.__getitem__)]


def traced_run(fn: Callable[[int, Acc, list[Stamp]], Awaitable[None]], n: int) -> Run:
    acc, log = Acc(), []

    async def timed() -> float:
        t0 = time.perf_counter()
        await fn(n, acc, log)
        return t0

    gc.collect()
    t0 = run_loop(timed())
    seconds = time.perf_counter() - t0
    if (acc.count, acc.total) != expected("W3", n):
        raise SystemExit(f"{fn.__name__}: wrong result {acc.count}/{acc.total}, "
                         f"expected {expected('W3', n)}")
    if len(log) != 3 * n:
        raise SystemExit(f"{fn.__name__}: {len(log)} sleeps stamped, expected {3 * n}")
    return Run(seconds, [(k, x, a - t0, b - t0) for k, x, a, b in log])


def ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=FULL_N["W3"], help="items (default: the bench's)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = ap.parse_args(argv)
    if args.n < 2 * IO_CONCURRENCY + 1001:
        ap.error(f"--n must be at least {2 * IO_CONCURRENCY + 1001} (the marks reach item #1000)")
    LOOP[0] = args.loop
    impls: dict[str, Callable[[int, Acc, list[Stamp]], Awaitable[None]]] = {
        "pool": run_pool, "pipelines": run_traced_engine}
    names = list(impls)
    traced_run(run_traced_engine, 2 * IO_CONCURRENCY + 1001)  # imports and first-time costs, unmeasured
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % 2:] + names[:r % 2]:
            runs[name].append(traced_run(impls[name], args.n))

    print(f"W3 traced, N={args.n:,}, {args.rounds} rounds, event loop {args.loop}; "
          f"medians over the rounds, ms")
    print("  the k-th sleep to start, from the run's start:")
    print(f"    {'':<14}" + "".join(f"{'#' + str(k if k >= 0 else args.n - 1):>9}" for k in MARKS))
    for stage in (1, 2, 3):
        for name in names:
            per_run = [run.starts(stage) for run in runs[name]]
            cells = "".join(f"{ms([s[k] for s in per_run]):9.2f}" for k in MARKS)
            print(f"    {name:<9} s{stage}  {cells}")
    print("  hand-on, an item's sleep ending in one stage to its next sleep starting, mean:")
    print(f"    {'':<14}{'first 100':>10}{'middle':>10}{'last 100':>10}")
    for stage in (1, 2):
        for name in names:
            firsts, middles, lasts = [], [], []
            for run in runs[name]:
                h = run.hand_on(stage)
                firsts.append(statistics.mean(h[:100]))
                middles.append(statistics.mean(h[100:-100]))
                lasts.append(statistics.mean(h[-100:]))
            print(f"    {name:<9} {stage}->{stage + 1} {ms(firsts):10.3f}{ms(middles):10.3f}"
                  f"{ms(lasts):10.3f}")
    for name in names:
        print(f"  {name:<9} total: median {ms([r.seconds for r in runs[name]]):.1f} ms")
    print("  " + paired_line("pipelines", "pool", [r.seconds for r in runs["pipelines"]],
                             [r.seconds for r in runs["pool"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
