"""Results per second `POST /api/runs` streams as NDJSON, on uvloop and on asyncio's own loop.

    .venv/bin/python bench/bench_http_runs.py            # 100,000 results x 1 and x 4 clients
    .venv/bin/python bench/bench_http_runs.py --quick    # smaller counts, a smoke run

For each event loop a real `python server.py` (with `--uvloop` or `--no-uvloop`) runs
`Source.range -> Flow.identity`; the clients (in this process, aiohttp) read the whole response
and check every line: `seq` from 0 without gaps, the values in order and a final `done` line.
The rate is all results received divided by the wall time from the first request to the last
`done` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spec(n: int) -> dict[str, Any]:
    return {"nodes": {"src": {"coro": "Source.range", "args": {"stop": n}},
                      "out": {"coro": "Flow.identity"}},
            "graph": {"src": ["out"], "out": None}}


async def one_client(http: aiohttp.ClientSession, url: str, n: int) -> int:
    async with http.post(f"{url}/api/runs", json=spec(n)) as r:
        assert r.status == 200, await r.text()
        seq = 0
        done = None
        async for raw in r.content:
            line = json.loads(raw)
            if "done" in line:
                done = line["done"]
                continue
            assert line["seq"] == seq and line["value"] == seq, line
            seq += 1
    assert done is not None and done["status"] == "completed" and done["results"] == n, done
    return seq


async def scenario(loop_flag: str, n: int, clients: int) -> tuple[float, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "server.py", "--host", "127.0.0.1", "--port", str(port), loop_flag,
        "--log-level", "WARNING", "--http-run-burst", "100", "--max-source-items", str(n),
        cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{url}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            start = time.perf_counter()
            got = await asyncio.gather(*(one_client(http, url, n) for _ in range(clients)))
            wall = time.perf_counter() - start
        return wall, sum(got) / wall
    finally:
        proc.terminate()
        await proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 results per client")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000
    print(f"POST /api/runs, Source.range({n:,}) -> Flow.identity, NDJSON read by aiohttp")
    print(f"{'loop':<8} {'clients':>7} {'wall s':>8} {'results/s':>12}")
    for flag, name in (("--uvloop", "uvloop"), ("--no-uvloop", "asyncio")):
        for clients in (1, 4):
            wall, rate = await scenario(flag, n, clients)
            print(f"{name:<8} {clients:>7} {wall:>8.2f} {rate:>12,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
