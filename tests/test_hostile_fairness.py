"""Hostile client, all at once: several attack classes for about ten seconds against a real
`python server.py` with default settings, while a canary on another address runs the demo.

The attacker is a separate process (tests/hostile_attack.py) connecting from 127.0.0.2: a
long-polling handshake flood, packets announcing binary attachments, malformed frames, three
connections sending 1 MB frames of an unknown event, and thirty sessions validating near-limit
specs twice a second. Meanwhile this process probes `/healthz` every 20 ms and samples the
server's RSS. The canary's demo must finish with all its results within 1.5x its quiet time
(measured just before, in this test), `/healthz` p99 must stay under 200 ms, and the server's
peak RSS under 300 MB.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiohttp
import psutil
import pytest
from hostile_util import ATTACKER
from serverutil import ROOT, connected, demo_expected, demo_spec, server_process

__all__: list[str] = []

STRINGS = [f"canary{i}" for i in range(6)]
SCALE = "0.5"  # the demo's 3/2/1 s sleeps become 1.5/1.0/0.5 s


async def run_demo(url: str) -> float:
    """The demo from 127.0.0.1: its wall time; all its results, once, checked."""
    async with connected(url) as c:
        started = time.monotonic()
        ack = await c.call("process_msg", demo_spec(STRINGS), {"results": "batch"}, within=30)
        assert ack["ok"] is True, ack
        done = await c.wait_done(within=60)
        took = time.monotonic() - started
        assert done["status"] == "completed", done
        assert sorted(c.results()) == demo_expected(STRINGS)
        assert c.got("pipeline_error") == []
    return took


@pytest.mark.slow
async def test_combined_attack_leaves_the_canary_its_pace() -> None:
    async with server_process("--demo-sleep-scale", SCALE) as (proc, url):
        server = psutil.Process(proc.pid)
        quiet = max([await run_demo(url) for _ in range(2)])
        peak_rss = server.memory_info().rss
        latencies: list[float] = []
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, "tests/hostile_attack.py", url, "--seconds", "10",
            "--local", ATTACKER, cwd=ROOT,
            # the checkout's `server` (tests import it) is importable from its root, not installed
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert attacker.stdout is not None
            line = await asyncio.wait_for(attacker.stdout.readline(), 30)
            assert line.strip() == b"started", line

            async def probe() -> None:
                nonlocal peak_rss
                async with aiohttp.ClientSession() as http:
                    while attacker.returncode is None:
                        t0 = time.perf_counter()
                        async with http.get(f"{url}/healthz") as r:
                            assert r.status == 200
                            await r.read()
                        latencies.append(time.perf_counter() - t0)
                        peak_rss = max(peak_rss, server.memory_info().rss)
                        await asyncio.sleep(0.02)

            prober = asyncio.create_task(probe())
            await asyncio.sleep(2.0)  # let every attack class ramp up
            attacked = await run_demo(url)
            out, err = await asyncio.wait_for(attacker.communicate(), 60)
            await prober
        finally:
            if attacker.returncode is None:
                attacker.kill()
                await attacker.wait()
        assert attacker.returncode == 0, err.decode()[-2000:]
        did = json.loads(out.decode().strip().splitlines()[-1])
        # The attack really happened, every class of it.
        assert did.get("handshake_429", 0) > 0, did
        for name in ("binary", "malformed"):  # tried; each that got through was closed
            assert did.get(name, 0) + did.get(f"{name}_refused", 0) > 0, did
            assert not did.get(name) or did.get(f"{name}_closed", 0) > 0, did
        assert did.get("big_unknown", 0) >= 3, did
        assert did.get("validate_ok", 0) + did.get("validate_rate_limited", 0) > 0, did
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("inf")
        report = (f"quiet {quiet:.2f} s, attacked {attacked:.2f} s, healthz p99 "
                  f"{p99 * 1000:.0f} ms over {len(latencies)}, peak RSS "
                  f"{peak_rss / 2**20:.0f} MB, attack {did}")
        print(report)
        assert attacked <= 1.5 * quiet, report
        assert p99 < 0.2, report
        assert peak_rss < 300 * 2**20, report
