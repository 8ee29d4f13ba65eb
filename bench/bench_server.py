"""Results per second the service streams to its clients, against a bare python-socketio server.

    .venv/bin/python bench/bench_server.py            # full run (about a minute)
    .venv/bin/python bench/bench_server.py --quick    # smaller counts, a smoke run

Every scenario runs the server and the clients in separate processes (2 client processes when
there are many clients). The pipelines server runs `Source.range -> Flow.identity` per client
with credit-window acks; the bare server (the ceiling) emits the same number of events from a
plain loop with no acks, no backpressure and no pipeline. The rate is all items received by all
clients divided by the wall time from the first request to the last `done`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


# -- the bare server (ceiling) -----------------------------------------------------------------
def run_bare_server(port: int) -> None:
    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)

    @sio.on("go")
    async def go(sid: str, req: dict[str, Any]) -> None:
        n, per_event = int(req["n"]), int(req["per_event"])
        if per_event == 1:
            for i in range(n):
                await sio.emit("recv", i, to=sid)
        else:
            for start in range(0, n, per_event):
                items = [{"node": "out", "seq": s, "value": s}
                         for s in range(start, min(n, start + per_event))]
                await sio.emit("results", {"pipeline_id": "bare", "items": items}, to=sid)
        await sio.emit("done", {"status": "completed", "results": n}, to=sid)

    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- clients -----------------------------------------------------------------------------------
async def one_client(url: str, kind: str, mode: str, n: int, window: int, per_event: int,
                     ) -> dict[str, Any]:
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    got = 0
    finished = asyncio.Event()
    status: dict[str, Any] = {}

    @client.on("recv")
    async def on_recv(value: Any) -> None:
        nonlocal got
        got += 1

    @client.on("results")
    async def on_results(batch: dict[str, Any]) -> None:
        nonlocal got
        got += len(batch["items"])

    @client.on("done")
    async def on_done(data: dict[str, Any]) -> None:
        status.update(data)
        finished.set()

    await client.connect(url, transports=["websocket"])
    try:
        start = time.perf_counter()
        if kind == "bare":
            await client.emit("go", {"n": n, "per_event": per_event if mode == "batch" else 1})
        else:
            spec = {"nodes": {"src": {"coro": "Source.range", "args": {"stop": n}},
                              "out": {"coro": "Flow.identity"}},
                    "graph": {"src": ["out"], "out": None}}
            options = {"results": mode, "window": window, "metrics": True}
            answer = await client.call("process_msg", (spec, options), timeout=30)
            assert answer["ok"], answer
        await asyncio.wait_for(finished.wait(), 600)
        end = time.perf_counter()
    finally:
        await client.disconnect()
    return {"got": got, "start": start, "end": end, "status": status.get("status")}


async def run_clients(args: argparse.Namespace) -> None:
    # Connect everyone first, then start together: the rate measures streaming, not connecting.
    results = await asyncio.gather(*(
        one_client(args.url, args.kind, args.mode, args.items, args.window, args.per_event)
        for _ in range(args.clients)))
    print(json.dumps(results))


# -- orchestration -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("server did not start")


@dataclass
class Scenario:
    name: str
    mode: str
    clients: int
    items: int  # per client
    window: int
    per_event: int = 100  # bare batched: items per event


def measure(url: str, kind: str, sc: Scenario) -> tuple[float, int]:
    procs = 1 if sc.clients == 1 else 2
    per_proc = [sc.clients // procs + (1 if i < sc.clients % procs else 0) for i in range(procs)]
    children = [
        subprocess.Popen(
            [PY, __file__, "--role", "clients", "--url", url, "--kind", kind, "--mode", sc.mode,
             "--clients", str(k), "--items", str(sc.items), "--window", str(sc.window),
             "--per-event", str(sc.per_event)],
            stdout=subprocess.PIPE, cwd=ROOT)
        for k in per_proc
    ]
    rows: list[dict[str, Any]] = []
    for child in children:
        out, _ = child.communicate(timeout=900)
        if child.returncode != 0:
            raise RuntimeError(f"client process failed ({child.returncode})")
        rows += json.loads(out)
    total = sum(r["got"] for r in rows)
    expected = sc.items * sc.clients
    if total != expected or any(r["status"] != "completed" for r in rows):
        raise RuntimeError(f"{kind} {sc.name}: got {total} of {expected} items")
    # perf_counter is system-wide on Linux (CLOCK_MONOTONIC), so processes compare.
    wall = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    return total / wall, total


def orchestrate(quick: bool, repeat: int) -> None:
    k = 10 if quick else 1
    scenarios = [
        Scenario("1 client, recv (legacy)", "recv", 1, 60_000 // k, 256),
        Scenario("1 client, batch", "batch", 1, 1_000_000 // k, 256),
        Scenario("1 client, batch, window 2048", "batch", 1, 1_000_000 // k, 2048),
        Scenario("50 clients, recv (legacy)", "recv", 50, 2_000 // k, 256),
        Scenario("50 clients, batch", "batch", 50, 40_000 // k, 256),
    ]
    ours_port, bare_port = free_port(), free_port()
    env = {key: v for key, v in os.environ.items() if not key.startswith("PIPELINES_")}
    ours = subprocess.Popen(
        [PY, "server.py", "--host", "127.0.0.1", "--port", str(ours_port), "--log-level",
         "WARNING", "--max-source-items", "10000000", "--max-sessions", "5000",
         "--pipeline-budget", "900", "--batch-max-items", "128"],
        cwd=ROOT, env=env)
    bare = subprocess.Popen([PY, __file__, "--role", "bare-server", "--port", str(bare_port)],
                            cwd=ROOT)
    rows = []
    try:
        wait_port(ours_port, ours)
        wait_port(bare_port, bare)
        for sc in scenarios:
            # Best of `repeat`, interleaved: on a shared machine the best run is the one the
            # neighbours disturbed least, for both servers alike.
            bare_rate = our_rate = 0.0
            total = 0
            for _ in range(repeat):
                rate, _ = measure(f"http://127.0.0.1:{bare_port}", "bare", sc)
                bare_rate = max(bare_rate, rate)
                rate, total = measure(f"http://127.0.0.1:{ours_port}", "pipelines", sc)
                our_rate = max(our_rate, rate)
            rows.append((sc, total, bare_rate, our_rate))
            print(f"  {sc.name}: bare {bare_rate:,.0f}/s, pipelines {our_rate:,.0f}/s",
                  file=sys.stderr)
    finally:
        for p in (ours, bare):
            p.terminate()
            p.wait(timeout=15)
    load = os.getloadavg()[0]
    print(f"\nserver benchmark ({os.cpu_count()} cores, load {load:.1f}; best of {repeat}; "
          "items = results received by clients)\n")
    print(f"| {'scenario':<30} | {'items':>9} | {'bare sio items/s':>16} | "
          f"{'pipelines items/s':>17} | {'ratio':>5} |")
    print(f"|{'-' * 32}|{'-' * 11}|{'-' * 18}|{'-' * 19}|{'-' * 7}|")
    for sc, total, bare_rate, our_rate in rows:
        print(f"| {sc.name:<30} | {total:>9,} | {bare_rate:>16,.0f} | {our_rate:>17,.0f} | "
              f"{our_rate / bare_rate:>5.2f} |")
    print("\nbare batched: 100 items per event, no acks; pipelines batched: at most "
          "min(128, window/2) items per event, acked.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["orchestrate", "bare-server", "clients"],
                        default="orchestrate")
    parser.add_argument("--quick", action="store_true", help="10x smaller counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (best kept)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--kind", choices=["bare", "pipelines"], default="pipelines")
    parser.add_argument("--mode", choices=["recv", "batch"], default="recv")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--per-event", type=int, default=100)
    args = parser.parse_args()
    if args.role == "bare-server":
        run_bare_server(args.port)
    elif args.role == "clients":
        asyncio.run(run_clients(args))
    else:
        orchestrate(args.quick, args.repeat)


if __name__ == "__main__":
    main()
