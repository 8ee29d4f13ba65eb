"""Our engine against itself at another git revision, and the hand-written reference, in one
process, round after round, paired.

Differences of a few milliseconds on W3 (three stages of timers) are smaller than the swing
between runs of the whole bench: its best-of-N says little there. This script runs the three
back to back in every round (the order rotating) and reports, for each pair, the mean of the
per-round differences with a 95% interval, and how many rounds each one won. The other revision
is the package `pipelines` taken from git (`git archive`) into a temporary directory and
imported under another name, so both engines run in the same interpreter.

    .venv/bin/python bench/engine_ab.py --rev HEAD~1 --workload W3 --loop uvloop --rounds 40
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.engine.handwritten import REF  # noqa: E402
from bench.engine.measure import LOOP, run_once  # noqa: E402
from bench.engine.ours import run_engine  # noqa: E402
from bench.engine.report import paired_line  # noqa: E402
from bench.engine.workloads import FULL_N, WORKLOADS, Acc, Variant  # noqa: E402


def package_at(rev: str, into: str) -> Any:
    """The `pipelines` package as it is at `rev`, imported as `pipelines_at_rev`."""
    blob = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", rev, "pipelines"],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        try:
            tar.extractall(into, filter="data")
        except TypeError:  # (Python before 3.11.4: no filter; this is our own repository)
            tar.extractall(into)
    os.rename(os.path.join(into, "pipelines"), os.path.join(into, "pipelines_at_rev"))
    sys.path.insert(0, into)
    return importlib.import_module("pipelines_at_rev")


def engine(workload: str, name: str, plumber: Any) -> Variant:
    async def run(n: int, acc: Acc) -> None:
        await run_engine(workload, n, acc, plumber=plumber)

    return Variant("pipelines", name, run)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="HEAD", help="git revision to compare with (default HEAD)")
    ap.add_argument("--workload", default="W3", choices=[w for w in WORKLOADS if w != "W4"])
    ap.add_argument("--n", type=int, help="items (default: the bench's full size)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = ap.parse_args(argv)
    n = args.n or FULL_N[args.workload]
    LOOP[0] = args.loop

    import pipelines

    with tempfile.TemporaryDirectory() as tmp:
        other = package_at(args.rev, tmp)
        variants = [Variant("asyncio", "reference", REF[args.workload]),
                    engine(args.workload, "working tree", pipelines.Plumber),
                    engine(args.workload, args.rev, other.Plumber)]
        times: list[list[float]] = [[] for _ in variants]
        for r in range(args.rounds):
            for i in [(r + k) % len(variants) for k in range(len(variants))]:
                seconds, err = run_once(variants[i], args.workload, n)
                if err is not None:
                    raise SystemExit(f"{variants[i].setting}: {err}")
                times[i].append(seconds)
    names = [v.setting for v in variants]
    print(f"{args.workload}, N={n:,}, {args.rounds} rounds, event loop {args.loop}; "
          f"working tree against {args.rev}")
    for name, ts in zip(names, times, strict=True):
        print(f"  {name:<14} best {min(ts) * 1e3:8.1f} ms   "
              f"median {statistics.median(ts) * 1e3:8.1f} ms")
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            print("  " + paired_line(names[a], names[b], times[a], times[b]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
