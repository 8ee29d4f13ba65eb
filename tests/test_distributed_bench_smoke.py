"""Smoke test of the distributed benchmark: `bench/distributed_bench.py --quick` runs, and every
row checked the count and sum of its results."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from natsutil import nats_binary

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_distributed_bench_quick_runs_and_every_row_is_checked() -> None:
    nats_binary()  # skip (or, under CI, fail) without nats-server
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "distributed_bench.py"), "--quick"],
                          cwd=ROOT, capture_output=True, text=True, timeout=230, check=False)
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-3000:]}\n{proc.stderr[-3000:]}"
    for name, count in (("W1", 5), ("LAT", 3), ("W3", 3), ("REC", 1)):
        rows = re.findall(rf"^{name}\s.*$", out, re.M)
        assert len(rows) == count, out
        assert all(re.search(r"\sok\b", r) for r in rows), "\n".join(rows)
    assert "FAIL" not in out
