"""Smoke test of the load benchmark: a small `bench/load.py` run passes its own history check.

The full run (200 clients x 1,000 items, see the README's promises section) takes longer than a
test should; this keeps the script and its checks working.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_load_bench_small_run_checks_its_history() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/load.py", "--clients", "20", "--items", "300", "--procs", "2",
         "--stalled", "1", "--stalled-items", "2000"],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "20/20 clients connected" in out, out[-4000:]
    assert re.search(r"^results\s+6000\b", out, re.M), out[-4000:]
    assert "history check    OK: nothing lost, doubled or reordered; every run done" in out, out
    assert re.search(r"^latency \(age\)\s+p50\s+\d+ ms", out, re.M), out
    assert re.search(r"peak \(VmHWM\)\s+\d+ MB", out), out
    # SIGTERM with the stalled client still connected: the server still exits 0.
    assert "server exit code 0;" in out, out[-4000:]
