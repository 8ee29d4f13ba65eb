"""Several servers: figures of the topology `scripts/cluster` starts (workers 0).

    .venv/bin/python bench/cluster_bench.py [--clients 20] [--announces 100]

Prints: start and stop time of the whole topology; the demo graph (demo_sleep_scale 0) run by
N concurrent clients through nginx over long-polling and over websocket (wall time, runs/s);
cross-server announce latency (POST to server 1, event on a client of server 2; p50/p99); and
how long after a Redis restart cross-server announcements arrive again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import socketio  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "cluster.py"
DEMO = json.loads((ROOT / "examples" / "graphs" / "demo.json").read_text())
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cluster(run_dir: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(SCRIPT), args[0], "--run-dir", str(run_dir), *args[1:]],
                   cwd=ROOT, check=True, capture_output=True, text=True, timeout=120)
    return time.perf_counter() - t0


async def demo_run(url: str, transport: str) -> int:
    sio = socketio.AsyncClient(reconnection=False)
    results: list[Any] = []
    done = asyncio.Event()
    sio.on("recv", results.append)
    sio.on("done", lambda _payload: done.set())
    await sio.connect(url, transports=[transport], auth={"token": TOKEN}, wait_timeout=30)
    await sio.emit("process_msg", DEMO)
    await asyncio.wait_for(done.wait(), 120)
    await sio.disconnect()
    return len(results)


async def announce(http: aiohttp.ClientSession, url: str, message: str) -> None:
    async with http.post(f"{url}/api/announce", json={"message": message},
                         headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 202, await r.text()


async def measure(state: dict[str, Any], clients: int, announces: int) -> None:
    proxy = f"http://127.0.0.1:{state['ports']['nginx']}"
    servers = [f"http://127.0.0.1:{p['port']}" for p in state["processes"]
               if p["kind"] == "server"]
    for transport in ("polling", "websocket"):
        t0 = time.perf_counter()
        counts = await asyncio.gather(*(demo_run(proxy, transport) for _ in range(clients)))
        wall = time.perf_counter() - t0
        ok = "ok" if counts == [10] * clients else f"WRONG {counts}"
        print(f"demo x {clients} clients through nginx, {transport:<9}: {wall:6.2f} s wall "
              f"(incl. disconnect), {clients / wall:6.1f} runs/s  {ok}")
    received: list[float] = []
    arrived = asyncio.Event()

    def on_announce(payload: dict[str, Any]) -> None:
        received.append(time.perf_counter())
        arrived.set()

    listener = socketio.AsyncClient(reconnection=False)
    listener.on("announce", on_announce)
    await listener.connect(servers[1], transports=["websocket"], auth={"token": TOKEN})
    latencies = []
    async with aiohttp.ClientSession() as http:
        await announce(http, servers[0], "warm-up")
        await asyncio.wait_for(arrived.wait(), 10)
        for i in range(announces):
            arrived.clear()
            t0 = time.perf_counter()
            await announce(http, servers[0], f"m{i}")
            await asyncio.wait_for(arrived.wait(), 10)
            latencies.append((received[-1] - t0) * 1000)
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"cross-server announce, {announces} in a row: p50 "
              f"{statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms")
        redis = next(p for p in state["processes"] if p["kind"] == "redis")
        port = state["ports"]["redis"]
        os.kill(redis["pid"], signal.SIGKILL)
        await asyncio.sleep(0.5)
        proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t0 = time.perf_counter()
            before = len(received)
            while len(received) == before:
                try:
                    await announce(http, servers[0], "back")
                except (AssertionError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.05)
            print(f"Redis SIGKILLed, restarted 0.5 s later: cross-server announce back "
                  f"{time.perf_counter() - t0:.2f} s after the restart")
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 10)
    await listener.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--announces", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        took = cluster(run_dir, "start", "--port", str(free_port()), "--workers", "0",
                       "--demo-sleep-scale", "0", "--token", TOKEN,
                       "--server-flag=--ping-interval=1", "--server-flag=--ping-timeout=2")
        print(f"scripts/cluster start (nats, redis, 2 servers, nginx) until healthy: {took:.2f} s")
        state = json.loads((run_dir / "state.json").read_text())
        try:
            asyncio.run(measure(state, args.clients, args.announces))
        finally:
            print(f"scripts/cluster stop: {cluster(run_dir, 'stop'):.2f} s")


if __name__ == "__main__":
    main()
