"""Smoke test of the engine benchmark: `bench/engine_bench.py --quick` runs and checks itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "engine_bench.py"
WORKLOADS = ("W1", "W2", "W2z", "W3", "W4")
IMPLS = ("asyncio", "pipelines", "aiostream", "pypeln")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_engine_bench_quick_runs_and_every_row_is_checked() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=80, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-3000:]}\n{proc.stderr[-3000:]}"
    assert re.search(r"^python:\s+3\.\d+", out, re.M), out[:500]
    assert re.search(r"^libs:.*aiostream \d.*pypeln \d", out, re.M), out[:500]
    for w in WORKLOADS:
        for impl in IMPLS:
            # one row per (workload, implementation), each with a passed result check
            rows = re.findall(rf"^{w}\s+{impl}\s+.*$", out, re.M)
            assert rows, f"no {w} row for {impl}:\n{out}"
            assert all(re.search(r"\sok\b", r) for r in rows), "\n".join(rows)
    assert "wrong result" not in out and "FAIL" not in out, out


@pytest.mark.timeout(60)
def test_engine_bench_build_times_both_ways() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--build", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=50, check=False,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    times = {label: (float(best), float(med)) for label, best, med in re.findall(
        r"^\s+(coroutines new to the process|the same coroutines again)\s+best ([\d.]+) ms"
        r"\s+median ([\d.]+) ms$", proc.stdout, re.M)}
    assert set(times) == {"coroutines new to the process", "the same coroutines again"}, \
        proc.stdout
    assert all(0 < best <= med for best, med in times.values()), times


@pytest.mark.timeout(90)
def test_engine_bench_counts_bytecodes_per_item() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--opcodes", "--quick", "--workloads", "W1", "--top", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=80, check=False,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    found = re.search(r"W1: reference ([\d,]+) .*pipelines ([\d,]+) .*ratio ([\d.]+)x",
                      proc.stdout)
    assert found, proc.stdout
    ref, ours = (int(found.group(i).replace(",", "")) for i in (1, 2))
    # the engine's point: far fewer bytecodes per item than the fast-path queue chain
    assert 0 < ours < ref, proc.stdout
    assert "pipelines/items.py:run_items" in proc.stdout, proc.stdout


@pytest.mark.timeout(90)
def test_engine_ab_pairs_the_working_tree_with_a_revision() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "engine_ab.py"), "--rev", "HEAD", "--workload",
         "W1", "--n", "2000", "--rounds", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=80, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr[-3000:]}"
    for name in ("reference", "working tree", "HEAD"):
        assert re.search(rf"^\s+{name}\s+best\s+[\d.]+ ms\s+median\s+[\d.]+ ms$", out, re.M), out
    pairs = re.findall(r"^\s+(.+) less (.+): [+-][\d.]+ ms \+/- [\d.]+ \(95%\), .* faster in "
                       r"(\d) of 3 rounds$", out, re.M)
    assert [(a, b) for a, b, _ in pairs] == [
        ("reference", "working tree"), ("reference", "HEAD"), ("working tree", "HEAD")], out


def test_the_w3_target_shows_the_engine_and_the_pool_round_by_round() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.engine.measure import Samples
    from bench.engine.report import summarize, targets
    from bench.engine.workloads import Variant

    async def nothing(n: int, acc: object) -> None:
        return None

    pool = Samples(Variant("asyncio", "workers", nothing), [0.540, 0.550, 0.545, 0.560])
    ours = Samples(Variant("pipelines", "default properties", nothing),
                   [0.538, 0.553, 0.541, 0.556])
    rows = summarize("W3", 5000, [pool, ours])
    lines = targets(rows, [], {"W3": 5000})
    # per round: -2, +3, -4, -4 ms: mean -1.75, the engine faster in 3 of 4
    assert any("the engine's time less the pool's -1.8 ms" in line
               and "faster in 3 of 4 rounds" in line for line in lines), lines
    # with rounds that do not pair up (one failed), no such line
    ours.errors.append("boom")
    assert not any("round by round" in line
                   for line in targets(summarize("W3", 5000, [pool, ours]), [], {"W3": 5000}))


@pytest.mark.timeout(90)
def test_w3_stages_traces_each_stage_of_both() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "w3_stages.py"), "--n", "1201", "--rounds", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=80, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr[-3000:]}"
    starts = {(m[0], int(m[1])): [float(x) for x in m[2].split()]
              for m in re.findall(r"^\s+(pool|pipelines)\s+s(\d)\s+([\d. ]+)$", out, re.M)}
    assert sorted(starts) == [(name, s) for name in ("pipelines", "pool") for s in (1, 2, 3)], out
    for (name, stage), cells in starts.items():
        assert len(cells) == 6, out
        assert cells == sorted(cells), out  # the k-th sleep to start, in k's order
        # an item starts stage s after its s - 1 sleeps of 10 ms before it
        assert cells[0] >= 10.0 * (stage - 1), (name, stage, out)
        assert cells[-1] < 3000, out
    hand_on = re.findall(r"^\s+(pool|pipelines)\s+(\d)->(\d)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$",
                         out, re.M)
    assert sorted((a, b, c) for a, b, c, *_ in hand_on) == [
        (name, s, str(int(s) + 1)) for name in ("pipelines", "pool") for s in ("1", "2")], out
    assert re.search(r"^\s+pipelines less pool: [+-][\d.]+ ms \+/- [\d.]+ \(95%\), pipelines "
                     r"faster in \d of 3 rounds$", out, re.M), out


def test_the_w3_note_says_when_the_engine_is_faster_round_by_round() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.engine.measure import Samples
    from bench.engine.report import summarize, targets
    from bench.engine.workloads import Variant

    async def nothing(n: int, acc: object) -> None:
        return None

    def note(pool_times: list[float], ours_times: list[float]) -> str:
        pool = Samples(Variant("asyncio", "workers", nothing), pool_times)
        ours = Samples(Variant("pipelines", "default properties", nothing), ours_times)
        lines = targets(summarize("W3", 5000, [pool, ours]), [], {"W3": 5000})
        assert any(line.startswith("W3:") and line.endswith("MISS") for line in lines), lines
        notes = [line for line in lines if "(note:" in line]
        assert len(notes) == 1, lines
        return notes[0]

    # the pool's best round is its one lucky round; every other round the engine is ahead
    lucky = note([0.530, 0.560, 0.561, 0.559, 0.562, 0.560],
                 [0.540, 0.545, 0.546, 0.544, 0.547, 0.545])
    assert "10 ms behind the pool's best; round by round the engine is faster" in lucky, lucky
    # behind in every round: no such claim
    behind = note([0.540, 0.541, 0.542, 0.540, 0.541, 0.542],
                  [0.545, 0.546, 0.547, 0.545, 0.546, 0.547])
    assert "5 ms behind the pool's best; the rounds" in behind, behind
    assert "round by round the engine is faster" not in behind, behind
