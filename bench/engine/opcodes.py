"""Python bytecodes per item, counted with `sys.settrace` (opcode events): which functions do
the work, for the reference and for the engine, apart from the machine's load. Each runs a
workload at two sizes in a fresh event loop; the difference divided by the difference of N is
the cost per item, with start-up (imports, building the pipeline) cancelled out. C code (the
interpreter's own work, builtins, `_asyncio`) is not seen: `--instructions` counts all of it."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from types import FrameType
from typing import Any

from .handwritten import REF
from .ours import run_engine
from .workloads import Acc, expected

__all__ = ["opcodes_per_item", "report_opcodes"]

#: the two sizes each run is counted at (the second minus the first gives the per-item cost)
SIZES = {"W1": (1_000, 6_000), "W2": (500, 3_000), "W2z": (500, 3_000), "W3": (500, 2_500)}
_ASYNCIO = ("asyncio", "selectors")
#: asyncio's files that are the reference's queues, not the event loop
_QUEUES = ("queues.py", "locks.py")


def _where(frame: FrameType) -> str:
    code = frame.f_code
    parts = code.co_filename.replace("\\", "/").split("/")
    pkg = next((p for p in reversed(parts[:-1]) if p in ("pipelines", "engine") + _ASYNCIO), "")
    return f"{pkg + '/' if pkg else ''}{parts[-1]}:{code.co_qualname}"


def _in_loop(where: str) -> bool:
    """A function of the event loop (asyncio, but not its queues: the reference's own work)."""
    pkg, _, rest = where.partition("/")
    return pkg in _ASYNCIO and rest.split(":")[0] not in _QUEUES


def _count(impl: str, workload: str, n: int) -> Counter[str]:
    ops: Counter[str] = Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            ops[_where(frame)] += 1
        return trace

    acc = Acc()
    main = REF[workload](n, acc) if impl == "asyncio" else run_engine(workload, n, acc)
    loop = asyncio.new_event_loop()
    try:
        sys.settrace(trace)
        try:
            loop.run_until_complete(main)
        finally:
            sys.settrace(None)
    finally:
        loop.close()
    if (acc.count, acc.total) != expected(workload, n):
        raise RuntimeError(f"{impl} {workload}: wrong result {acc.count}/{acc.total}")
    return ops


def opcodes_per_item(impl: str, workload: str, scale: float = 1.0) -> dict[str, float]:
    """Bytecodes per item by function ("package/file:function"); `scale` shrinks the sizes."""
    small, big = (max(10, int(n * scale)) for n in SIZES[workload])
    _count(impl, workload, 10)  # first-time work (imports, args models kept) out of the way
    a, b = _count(impl, workload, small), _count(impl, workload, big)
    return {k: (b[k] - a[k]) / (big - small) for k in set(a) | set(b)}


def report_opcodes(workloads: list[str], top: int = 12, scale: float = 1.0) -> int:
    """Print bytecodes per item of the reference and of the engine, and where they go."""
    print("Python bytecodes per item (sys.settrace opcode events; C code not seen; does not "
          "depend on the machine's load; the event loop is asyncio's own)")
    for w in workloads:
        if w not in SIZES:
            continue
        per = {impl: opcodes_per_item(impl, w, scale) for impl in ("asyncio", "pipelines")}
        totals = {impl: sum(d.values()) for impl, d in per.items()}
        loop_share = {impl: sum(v for k, v in d.items() if _in_loop(k)) for impl, d in per.items()}
        print(f"\n  {w}: reference {totals['asyncio']:,.0f} (the event loop's own "
              f"{loop_share['asyncio']:,.0f}), pipelines {totals['pipelines']:,.0f} (the event "
              f"loop's own {loop_share['pipelines']:,.0f}); ratio "
              f"{totals['asyncio'] / totals['pipelines']:.2f}x")
        for impl, d in per.items():
            label = "reference" if impl == "asyncio" else "pipelines"
            print(f"    {label}, top {top}:")
            for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]:
                if v >= 0.05:
                    print(f"      {v:9.1f}  {k}")
    return 0
