"""The command line: profile, count instructions, or run the workloads and print the tables and
targets."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import time
from typing import Any

from .build import report_build
from .instructions import count_child, report_instructions
from .measure import LOOP, measure, measure_w4, w4_child
from .opcodes import report_opcodes
from .ours import engine_available, run_engine
from .report import Row, best_per_impl, fmt_rate, machine_info, print_header, print_rows, summarize, targets
from .workloads import DESCRIPTIONS, FULL_N, QUICK_N, WORKLOADS, Acc, expected

__all__ = ["profile_engine", "main"]


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
    ap = argparse.ArgumentParser(
        description="Engine benchmark: pipelines against hand-written asyncio queues, aiostream "
        "and pypeln.")
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
    ap.add_argument("--top", type=int, default=None,
                    help="rows printed by --profile (default 35) or per implementation by "
                         "--opcodes (default 12)")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                    help="event loop for every run (default: asyncio's own)")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per item under valgrind's callgrind instead "
                         "(W1, W2, W2z; load-independent; a few minutes)")
    ap.add_argument("--build", action="store_true",
                    help="time building a pipeline (Plumber(spec)) instead: coroutines new to "
                         "the process, and the same ones again")
    ap.add_argument("--opcodes", action="store_true",
                    help="count Python bytecodes per item by function instead (W1, W2, W2z, "
                         "W3; load-independent; about a minute)")
    ap.add_argument("--count-child", metavar="IMPL", help=argparse.SUPPRESS)
    ap.add_argument("--count-workload", help=argparse.SUPPRESS)
    ap.add_argument("--count-n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--w4-child", metavar="IMPL", help=argparse.SUPPRESS)
    ap.add_argument("--w4-n", type=int, default=FULL_N["W4"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    LOOP[0] = args.loop

    if args.w4_child:
        print(json.dumps(w4_child(args.w4_child, args.w4_n)))
        return 0
    if args.count_child:
        count_child(args.count_child, args.count_workload, args.count_n)
        return 0

    ns = {k: max(10, int(v * args.scale)) for k, v in (QUICK_N if args.quick else FULL_N).items()}
    if args.profile:
        profile_engine(args.profile, ns[args.profile], args.top or 35)
        return 0
    if args.build:
        return report_build(30 if args.quick else 300)
    if args.opcodes:
        return report_opcodes([w.strip() for w in args.workloads.split(",") if w.strip()],
                              args.top or 12, 0.1 if args.quick else 1.0)
    if args.instructions:
        workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
        return report_instructions(workloads, 10_000 if not args.quick else 1_000)

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
            print(f"  {w:<4} {impl:<10} {fmt_rate(r.best):>10} it/s  {ratio:>6}  [{r.setting}]")
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
