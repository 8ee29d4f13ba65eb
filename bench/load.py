"""Load benchmark of the socket.io service, from separate client processes.

Starts a real server the way users do (``python server.py --port N``; extra flags after
``--server-args``), spreads the clients over a few worker processes, each running many
python-socketio ``AsyncClient``s, and records every ``(pipeline id, seq)`` received. From that
recorded history it checks that nothing was lost, doubled or reordered and that every run ended
with exactly one ``done``, then prints wall time, results/s, latency percentiles and the server's
peak RSS.

Scenarios (the load cases of docs/promises.md):

    python bench/load.py                      # L2: 200 clients x 5-node pipeline x 1,000 items
    python bench/load.py --clients 1          # L1
    python bench/load.py --stalled 1          # L3: L2 plus one client that stops reading
    python bench/load.py --connects 500       # L4: 500 connects in 5 s
    python bench/load.py --url http://host:8080   # against a running server (no RSS figure)

Latency of a result is its age when it reaches the client: the pipeline's fourth node
(``Flow.timestamp``) stamps each value with the wall clock (clients and server share the
machine's clock), so the age covers the last node, the result buffer, the credit window, the
socket and the client's own queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


# --- the pipeline under load ---------------------------------------------------------------


def bench_spec(items: int, queue_size: int) -> dict[str, Any]:
    """A 5-node chain: numbers, +1, *2, a node that stamps each value with the server's clock,
    and an output node. Values arrive as [(i + 1) * 2, t]."""
    props = {"queue_size": queue_size}
    return {
        "nodes": {
            "src": {"coro": "Source.range", "args": {"start": 0, "stop": items},
                    "properties": props},
            "add": {"coro": "Number.add", "args": {"n": 1}, "properties": props},
            "mul": {"coro": "Number.multiply", "args": {"factor": 2}, "properties": props},
            "stamp": {"coro": "Flow.timestamp", "properties": props},
            "out": {"coro": "Flow.identity", "properties": props},
        },
        "graph": {"src": ["add"], "add": ["mul"], "mul": ["stamp"], "stamp": ["out"],
                  "out": None},
    }


def stalled_spec(items: int) -> dict[str, Any]:
    """L3's pipeline: about 15 KB per result (1.5 GB for 100,000 if the server kept them)."""
    return {
        "nodes": {
            "src": {"coro": "Source.range", "args": {"start": 10**4, "stop": 10**4 + items}},
            "wide": {"coro": "Text.format", "args": {"template": "{0}" * 300}},
            "wider": {"coro": "Text.format", "args": {"template": "{0}" * 10}},
            "out": {"coro": "Flow.identity"},
        },
        "graph": {"src": ["wide"], "wide": ["wider"], "wider": ["out"], "out": None},
    }


def expected_value(i: int) -> int:
    return (i + 1) * 2


# --- records ---------------------------------------------------------------------------------


@dataclass
class ClientRecord:
    """What one client saw, in arrival order."""

    cid: int
    pipeline_id: str | None = None
    accepted: bool = False
    ack_error: Any = None
    t_submit: float = 0.0
    t_first: float = 0.0
    t_done: float = 0.0
    seqs: list[int] = field(default_factory=list)
    pids: list[str | None] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    ages: list[float] = field(default_factory=list)
    done: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    failure: str | None = None


def _value_and_age(value: Any, now: float) -> tuple[Any, float | None]:
    # Flow.timestamp turns v into [v, t]; t is the server's wall clock.
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], float):
        return value[0], now - value[1]
    return value, None


async def run_client(
    cid: int, url: str, spec: dict[str, Any], options: dict[str, Any],
    go: asyncio.Event, on_connected: Any, limit: float,
) -> ClientRecord:
    rec = ClientRecord(cid)
    sio = socketio.AsyncClient(reconnection=False)
    finished = asyncio.Event()

    @sio.on("results")
    async def on_results(payload: dict[str, Any]) -> None:
        now = time.time()
        if not rec.t_first:
            rec.t_first = now
        for item in payload.get("items", []):
            value, age = _value_and_age(item.get("value"), now)
            rec.seqs.append(item.get("seq"))
            rec.pids.append(payload.get("pipeline_id"))
            rec.values.append(value)
            if age is not None:
                rec.ages.append(age)

    @sio.on("recv")
    async def on_recv(value: Any) -> None:
        now = time.time()
        if not rec.t_first:
            rec.t_first = now
        v, age = _value_and_age(value, now)
        rec.seqs.append(len(rec.seqs))
        rec.pids.append(rec.pipeline_id)
        rec.values.append(v)
        if age is not None:
            rec.ages.append(age)

    @sio.on("done")
    async def on_done(payload: dict[str, Any]) -> None:
        rec.t_done = time.time()
        rec.done.append(payload)
        finished.set()

    @sio.on("pipeline_error")
    async def on_error(payload: dict[str, Any]) -> None:
        rec.errors.append(payload)
        if payload.get("terminal") and rec.pipeline_id is None:
            finished.set()

    @sio.on("disconnect")
    async def on_disconnect(*_: Any) -> None:
        finished.set()

    try:
        await sio.connect(url, transports=["websocket"], wait_timeout=30)
        on_connected()
        await go.wait()
        rec.t_submit = time.time()
        ack = await sio.call("process_msg", (spec, options), timeout=limit)
        if isinstance(ack, dict) and ack.get("ok"):
            rec.accepted = True
            rec.pipeline_id = ack.get("pipeline_id")
        else:
            rec.ack_error = ack
            finished.set()
        async with asyncio.timeout(limit):
            await finished.wait()
    except Exception as exc:  # noqa: BLE001 - a benchmark records every failure and goes on
        rec.failure = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await sio.disconnect()
    return rec


async def _worker_main(
    url: str, cids: list[int], spec: dict[str, Any], options: dict[str, Any],
    ready: Any, start: Any, out_path: str, limit: float,
) -> None:
    go, all_in = asyncio.Event(), asyncio.Event()
    connected = 0

    def on_connected() -> None:
        nonlocal connected
        connected += 1
        if connected == len(cids):
            all_in.set()

    tasks = [asyncio.create_task(run_client(c, url, spec, options, go, on_connected, limit))
             for c in cids]
    waiter = asyncio.create_task(all_in.wait())
    # Every client connected, or one gave up (its record says why), or a minute passed.
    await asyncio.wait([waiter, *tasks], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    ready.put((os.getpid(), connected))
    await asyncio.to_thread(start.wait)
    go.set()
    records = await asyncio.gather(*tasks)
    text = json.dumps([r.__dict__ for r in records])
    await asyncio.to_thread(Path(out_path).write_text, text)


def worker(url: str, cids: list[int], spec: dict[str, Any], options: dict[str, Any],
           ready: Any, start: Any, out_path: str, timeout: float) -> None:
    """One client process: connect its clients, wait for the start signal, run, save records."""
    asyncio.run(_worker_main(url, cids, spec, options, ready, start, out_path, timeout))


# --- the stalled client (L3) -----------------------------------------------------------------


async def stalled_client(url: str, spec: dict[str, Any], options: dict[str, Any],
                         started: asyncio.Event) -> dict[str, Any]:
    """Connect by hand, submit a pipeline, then never read the socket again."""
    info: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
        await ws.receive()  # engine.io open
        await ws.send_str("40")
        await ws.receive()  # namespace connected
        await ws.send_str("421" + json.dumps(["process_msg", spec, options]))
        info["t_submit"] = time.time()
        started.set()
        # From here on nothing reads: the kernel buffers fill and the server must cope.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        info["closed_by_server"] = ws.closed
    return info


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server_process(port: int, extra: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    log = tempfile.NamedTemporaryFile(prefix="pipelines-bench-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "server.py", "--port", str(port), "--host", "127.0.0.1", *extra],
        cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        text = Path(log.name).read_text(errors="replace")
        warnings = [ln for ln in text.splitlines() if " WARNING " in ln or " ERROR " in ln]
        print(f"server exit code {proc.returncode}; {len(warnings)} warning/error log lines")
        if proc.returncode != 0 or "Traceback" in text:
            print(text[-3000:])
        Path(log.name).unlink()


async def wait_healthy(url: str, within: float = 20) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + within
        while True:
            try:
                async with session.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return dict(await r.json())
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}/healthz did not answer within {within} s")
            await asyncio.sleep(0.1)


def rss_kb(pid: int, field_name: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- checking the history --------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def check_history(records: list[dict[str, Any]], items: int) -> list[str]:
    """Every problem found in the recorded history (empty: all runs exact)."""
    problems: list[str] = []
    pids: set[str] = set()
    for r in records:
        cid = r["cid"]
        if r["failure"]:
            problems.append(f"client {cid}: {r['failure']}")
        if not r["accepted"]:
            problems.append(f"client {cid}: not accepted: {r['ack_error']}")
            continue
        pid = r["pipeline_id"]
        if pid in pids:
            problems.append(f"client {cid}: pipeline id {pid} given twice")
        pids.add(pid)
        if any(p != pid for p in r["pids"]):
            problems.append(f"client {cid}: results of another pipeline arrived")
        seqs = r["seqs"]
        if seqs != list(range(len(seqs))):
            dup = len(seqs) - len(set(seqs))
            first_bad = next(i for i, s in enumerate(seqs) if s != i)
            problems.append(f"client {cid}: seq out of order at {first_bad} "
                            f"(got {seqs[first_bad]}; {dup} doubled)")
        if len(seqs) != items:
            problems.append(f"client {cid}: {len(seqs)} results, expected {items}")
        want = [expected_value(i) for i in range(items)]
        if r["values"] != want[: len(r["values"])]:
            problems.append(f"client {cid}: values differ from the expected sequence")
        if len(r["done"]) != 1:
            problems.append(f"client {cid}: {len(r['done'])} done events")
        elif r["done"][0].get("status") != "completed":
            problems.append(f"client {cid}: done status {r['done'][0].get('status')}")
        elif r["done"][0].get("results") not in (None, items):
            problems.append(f"client {cid}: done says {r['done'][0].get('results')} results")
        if any(e.get("terminal") for e in r["errors"]):
            problems.append(f"client {cid}: terminal error {r['errors']}")
    return problems


# --- scenarios -------------------------------------------------------------------------------


async def run_load(args: argparse.Namespace, url: str, server_pid: int | None) -> int:
    spec = bench_spec(args.items, args.queue_size)
    options = {"results": args.results, "window": args.window, "metrics": False}
    ctx = mp.get_context("spawn")
    ready, start = ctx.Queue(), ctx.Event()
    tmp = Path(tempfile.mkdtemp(prefix="pipelines-load-"))
    groups = [list(range(i, args.clients, args.procs)) for i in range(args.procs)]
    groups = [g for g in groups if g]
    procs = []
    for i, cids in enumerate(groups):
        p = ctx.Process(target=worker, args=(url, cids, spec, options, ready, start,
                                             str(tmp / f"w{i}.json"), args.timeout))
        p.start()
        procs.append(p)
    connected = 0
    for _ in procs:
        _, n = await asyncio.to_thread(ready.get, True, 90)
        connected += n
    print(f"{connected}/{args.clients} clients connected from {len(procs)} processes")

    samples: list[tuple[float, int]] = []
    stalled_task: asyncio.Task[dict[str, Any]] | None = None
    stalled_started = asyncio.Event()
    if args.stalled:
        big = stalled_spec(args.stalled_items)
        stalled_task = asyncio.create_task(
            stalled_client(url, big, {"results": args.results, "window": args.window},
                           stalled_started))
        await stalled_started.wait()
    base_rss = rss_kb(server_pid) if server_pid else 0
    t0 = time.time()
    start.set()
    while any(p.is_alive() for p in procs):
        if server_pid:
            samples.append((time.time() - t0, rss_kb(server_pid)))
        await asyncio.sleep(0.1)
    wall = time.time() - t0
    for p in procs:
        p.join()
    peak_kb = rss_kb(server_pid, "VmHWM") if server_pid else 0
    health = await wait_healthy(url)
    if stalled_task is not None:
        stalled_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stalled_task

    records: list[dict[str, Any]] = []
    for i in range(len(groups)):
        records.extend(json.loads((tmp / f"w{i}.json").read_text()))
    shutil.rmtree(tmp)
    problems = check_history(records, args.items)
    total = sum(len(r["seqs"]) for r in records)
    ages = [a for r in records for a in r["ages"]]
    first = [r["t_first"] - r["t_submit"] for r in records if r["t_first"]]
    runs = [r["t_done"] - r["t_submit"] for r in records if r["t_done"]]
    p99 = pct(ages, 99)
    print(f"clients {args.clients} x items {args.items} (5 nodes, results={args.results}, "
          f"window={args.window}, queue_size={args.queue_size})")
    print(f"wall time        {wall:8.2f} s")
    print(f"results          {total:8d}  ({total / wall:,.0f} results/s)")
    print(f"latency (age)    p50 {pct(ages, 50) * 1000:7.0f} ms   p99 {p99 * 1000:7.0f} ms   "
          f"max {max(ages, default=math.nan) * 1000:7.0f} ms")
    print(f"first result     p50 {pct(first, 50):7.2f} s    p99 {pct(first, 99):7.2f} s")
    print(f"run time/client  p50 {pct(runs, 50):7.2f} s    p99 {pct(runs, 99):7.2f} s")
    if server_pid:
        rss_during = max((kb for _, kb in samples), default=0)
        print(f"server RSS       before {base_rss / 1024:6.0f} MB   max sampled "
              f"{rss_during / 1024:6.0f} MB   peak (VmHWM) {peak_kb / 1024:6.0f} MB")
    print(f"healthz after    {health}")
    verdict = ("OK: nothing lost, doubled or reordered; every run done" if not problems
               else f"{len(problems)} problems")
    print(f"history check    {verdict}")
    for p in problems[:20]:
        print("  -", p)
    ok = not problems and connected == args.clients
    targets = []
    if args.clients >= 200:
        targets = [("done within 40 s", wall < 40), ("p99 latency < 4 s", p99 < 4.0)]
        if server_pid:
            targets.append(("peak RSS < 300 MB", peak_kb < 300 * 1024))
    if args.stalled and server_pid:
        growth = (max((kb for _, kb in samples), default=0) - base_rss) / 1024
        print(f"stalled client   server RSS growth during the run {growth:.0f} MB "
              f"(its pipeline makes {args.stalled_items:,} results of ~15 KB)")
        targets.append(("RSS growth < 150 MB", growth < 150))
    for name, good in targets:
        print(f"target {name:22s} {'met' if good else 'MISSED'}")
        ok = ok and good
    return 0 if ok else 1


async def run_connects(args: argparse.Namespace, url: str) -> int:
    """L4: open `--connects` socket.io connections within `--connect-window` seconds."""
    n, window = args.connects, args.connect_window
    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="pipelines-connects-"))
    groups = [list(range(i, n, args.procs)) for i in range(args.procs)]
    t0 = time.time() + 1.0
    procs = [ctx.Process(target=connect_worker, args=(url, g, n, window, t0, str(tmp / f"c{i}.json"),
                                 args.connect_call))
             for i, g in enumerate(groups) if g]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    rows: list[dict[str, Any]] = []
    for i in range(len(procs)):
        rows.extend(json.loads((tmp / f"c{i}.json").read_text()))
    shutil.rmtree(tmp)
    ok_rows = [r for r in rows if r["ok"]]
    lat = [r["latency"] for r in ok_rows]
    span = max((r["t_end"] for r in ok_rows), default=t0) - t0
    print(f"connects         {len(ok_rows)}/{n} ok within {span:.2f} s "
          f"(p50 {pct(lat, 50) * 1000:.0f} ms, p99 {pct(lat, 99) * 1000:.0f} ms)")
    for r in [r for r in rows if not r["ok"]][:10]:
        print("  -", r["error"])
    health = await wait_healthy(url)
    print(f"healthz after    {health}")
    return 0 if len(ok_rows) == n and span <= window + 2 else 1


def connect_worker(url: str, ids: list[int], n: int, window: float, t0: float,
                   out_path: str, call: bool) -> None:
    asyncio.run(_connect_worker(url, ids, n, window, t0, out_path, call))


async def _connect_worker(url: str, ids: list[int], n: int, window: float, t0: float,
                          out_path: str, call: bool) -> None:
    rows: list[dict[str, Any]] = []
    clients: list[socketio.AsyncClient] = []
    release, all_tried = asyncio.Event(), asyncio.Event()

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, t0 + window * 0.9 * i / n - time.time()))
        sio = socketio.AsyncClient(reconnection=False)
        t = time.time()
        try:
            await sio.connect(url, transports=["websocket"], wait_timeout=10)
            answer: Any = {"ok": sio.connected and bool(sio.get_sid())}
            if call:
                answer = await sio.call("registry", timeout=10)
            ok = isinstance(answer, dict) and answer.get("ok") is True
            rows.append({"ok": ok, "latency": time.time() - t, "t_end": time.time(),
                         "error": None if ok else f"answer {answer!r:.200}"})
            clients.append(sio)
            if len(rows) == len(ids):
                all_tried.set()
            await release.wait()
        except Exception as exc:  # noqa: BLE001 - record and go on
            rows.append({"ok": False, "latency": time.time() - t, "t_end": time.time(),
                         "error": f"{type(exc).__name__}: {exc}"})
            if len(rows) == len(ids):
                all_tried.set()

    tasks = [asyncio.create_task(one(i)) for i in ids]
    await all_tried.wait()
    release.set()
    await asyncio.gather(*tasks)
    for sio in clients:
        with contextlib.suppress(Exception):
            await sio.disconnect()
    await asyncio.to_thread(Path(out_path).write_text, json.dumps(rows))


async def amain(args: argparse.Namespace) -> int:
    if args.url:
        await wait_healthy(args.url)
        if args.connects:
            return await run_connects(args, args.url)
        return await run_load(args, args.url, None)
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PIPELINES_MAX_SESSIONS": str(max(1000, args.clients * 2, args.connects * 2))}
    with server_process(port, args.server_args, env) as proc:
        await wait_healthy(url)
        if args.connects:
            return await run_connects(args, url)
        return await run_load(args, url, proc.pid)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--procs", type=int, default=4, help="client processes")
    p.add_argument("--results", choices=["batch", "recv"], default="batch")
    p.add_argument("--window", type=int, default=256, help="credit window asked for")
    p.add_argument("--queue-size", type=int, default=64, help="queue_size of every node")
    p.add_argument("--timeout", type=float, default=120, help="per client, seconds")
    p.add_argument("--stalled", type=int, default=0, help="L3: clients that stop reading")
    p.add_argument("--stalled-items", type=int, default=100_000)
    p.add_argument("--connects", type=int, default=0, help="L4: connections to open")
    p.add_argument("--connect-window", type=float, default=5.0)
    p.add_argument("--connect-call", action="store_true",
                   help="L4: also ask each connection for the registry (a full round trip)")
    p.add_argument("--url", help="use a running server instead of starting one")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--server-args", nargs=argparse.REMAINDER, default=[],
                   help="flags passed on to server.py")
    args = p.parse_args(argv)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
