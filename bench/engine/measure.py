"""Measuring: every variant run interleaved in fresh event loops (asyncio's or uvloop), its
result checked; W4 in a fresh subprocess per implementation with its RSS sampled."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .handwritten import PLAIN, REF, ref_w3_task_per_item, ref_w4_unbounded
from .ours import engine_available, engine_variants
from .rivals import aio_variants, pypeln_variants
from .workloads import IO_CONCURRENCY, Acc, Variant, expected

__all__ = [
    "Samples", "ENTRY", "LOOP", "run_loop", "run_once", "variants_for", "measure", "w4_child",
    "W4_CONTROL", "measure_w4"
]


@dataclass
class Samples:
    variant: Variant
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pruned: bool = False


#: the script a W4 child runs (the thin entry of this package)
ENTRY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "engine_bench.py")
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
            [sys.executable, ENTRY, "--w4-child", impl, "--w4-n", str(n),
             "--loop", LOOP[0]],
            capture_output=True, text=True, timeout=600, check=False,
        )
        try:
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            out.append({"impl": impl, "error": f"child exited {proc.returncode}: "
                        f"{proc.stderr.strip()[-300:]}"})
    return out


