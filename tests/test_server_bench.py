"""Smoke test of the service benchmark: `bench/bench_server.py --quick` runs and checks itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_server_bench_quick_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/bench_server.py", "--quick", "--repeat", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=170, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = re.findall(r"^\| (\d+ clients?, [^|]+?)\s+\|\s+([\d,]+) \|\s+([\d,]+) \|\s+([\d,]+) \|"
                      r"\s+([\d.]+) \|$", proc.stdout, re.M)
    assert len(rows) == 5, proc.stdout
    for _name, items, bare, ours, ratio in rows:
        # Every client got every item (the bench checks), and both rates are real numbers.
        assert int(items.replace(",", "")) > 0
        assert int(bare.replace(",", "")) > 0 and int(ours.replace(",", "")) > 0
        assert float(ratio) > 0
