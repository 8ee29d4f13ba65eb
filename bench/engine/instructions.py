"""Instructions per item, counted by valgrind's callgrind: a measure that does not move with the
machine's load (wall-clock figures on a shared machine swing by tens of percent between rounds).

Each implementation runs a workload in a child process under callgrind twice, with a small and
a larger N; the difference of the two totals divided by the difference of N is its cost per
item, with start-up (imports, building the pipeline) cancelled out. Every run checks its
result (count and sum at the sink) as the timed runs do.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from .handwritten import REF
from .measure import ENTRY, run_loop
from .ours import run_engine
from .workloads import Acc, expected

__all__ = ["count_child", "instructions_per_item", "report_instructions"]

_BASE_N = 1_000
_TOTAL = re.compile(r"Collected : (\d+)")


def count_child(impl: str, workload: str, n: int) -> None:
    """The child: run `impl` ("asyncio", "pipelines", or "pipelines-task-each": a task per
    node) on `workload` once, check the result."""
    acc = Acc()
    if impl == "asyncio":
        run_loop(REF[workload](n, acc))
    else:
        run_loop(run_engine(workload, n, acc, shared_task=impl == "pipelines"))
    if (acc.count, acc.total) != expected(workload, n):
        raise SystemExit(f"wrong result: {acc.count}/{acc.total}, expected {expected(workload, n)}")


def _total(impl: str, workload: str, n: int) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           ENTRY, "--count-child", impl, "--count-workload", workload, "--count-n", str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = _TOTAL.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"{impl} {workload} n={n} under callgrind failed: {proc.stderr[-500:]}")
    return int(found.group(1))


def instructions_per_item(impl: str, workload: str, n: int) -> float:
    return (_total(impl, workload, _BASE_N + n) - _total(impl, workload, _BASE_N)) / n


def report_instructions(workloads: list[str], n: int) -> int:
    """Print instructions per item of the fast-path reference and of the engine, and their ratio."""
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian's package valgrind): no instruction counts")
        return 1
    print(f"instructions per item under callgrind (N={n:,} after a run of {_BASE_N:,}; "
          "does not depend on the machine's load)")
    for w in workloads:
        if w not in ("W1", "W2", "W2z"):
            continue
        ref = instructions_per_item("asyncio", w, n)
        ours = instructions_per_item("pipelines", w, n)
        each = instructions_per_item("pipelines-task-each", w, n)
        print(f"  {w:<4} asyncio fast path {ref:>9,.0f}   pipelines {ours:>9,.0f}   "
              f"ratio {ref / ours:.2f}x   (a task per node: {each:,.0f}, {ref / each:.2f}x)")
    return 0
