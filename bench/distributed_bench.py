"""Distributed-mode benchmark: nodes on a worker pool over NATS JetStream against in-process.

Starts its own ``nats-server -js`` (free port, temporary store) and ``python -m server.worker``
processes, then measures:

- W1  chain ``src -> x+1 -> x*2 -> sink`` with ``x+1`` on the pool: items/s for 1, 16, 64 and
      256 items per message, against the same chain in-process (same run).
- LAT latency one item adds per hop (driver -> worker, worker -> driver), p50 and p99, items
      sent one at a time (each waits for the previous result).
- W3  three stages of ``sleep(0.01)``, the middle one on the pool (concurrency 8 per worker),
      on 1, 2 and 4 workers: items/s and speed-up against one worker.
- REC recovery after SIGKILL of one of two workers: the longest pause in the ordered output
      after the kill, against ``ack_wait``.

Every row checks the count and sum of what reached the sink ("ok"). Not a test: it prints.
``python bench/distributed_bench.py`` (``--quick`` for small inputs, as the smoke test runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines import Plumber  # noqa: E402
from pipelines.remote import RemoteConfig, registry_digest  # noqa: E402
from server.coroutines import build_registry  # noqa: E402

__all__ = ["main"]

REGISTRY = build_registry()
ACK_WAIT = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Env:
    """The broker and the worker processes of one benchmark run."""

    def __init__(self) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not os.path.exists(binary):
            raise SystemExit("nats-server is not installed (Debian package nats-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = tempfile.mkdtemp(prefix="pl-bench-nats-")
        self.nats: asyncio.subprocess.Process | None = None
        self.workers: list[asyncio.subprocess.Process] = []
        self.w3: list[asyncio.subprocess.Process] = []
        self.logdir = tempfile.mkdtemp(prefix="pl-bench-workers-")

    async def start(self) -> None:
        self.nats = await asyncio.create_subprocess_exec(
            self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise SystemExit("nats-server did not start")

    async def worker(self, pool: str) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
        env["PIPELINES_ACK_WAIT"] = str(ACK_WAIT)
        log = Path(self.logdir) / f"w{len(self.workers)}.log"
        out = log.open("wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.worker", "--pool", pool, "--nats", self.url,
                "--name", f"w{len(self.workers)}", "--concurrency", "64",
                cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT)
        finally:
            out.close()
        self.workers.append(proc)
        for _ in range(400):
            if b"serves pool" in log.read_bytes():
                return proc
            if proc.returncode is not None:
                raise SystemExit(f"worker exited: {log.read_text()}")
            await asyncio.sleep(0.05)
        raise SystemExit("worker did not start")

    async def close(self) -> None:
        for p in [*self.workers, self.nats]:
            if p is not None and p.returncode is None:
                p.kill()
                await p.wait()
        shutil.rmtree(self.store, ignore_errors=True)
        shutil.rmtree(self.logdir, ignore_errors=True)


def config(url: str, batch: int = 64) -> RemoteConfig:
    return RemoteConfig(nats_url=url, ack_wait=ACK_WAIT, batch_items=batch, live_ttl=10.0,
                        registry_digest=registry_digest(REGISTRY))


def w1_spec(n: int, pool: str | None) -> dict[str, Any]:
    add = {"coro": "Number.add", "args": {"n": 1}}
    if pool:
        add["properties"] = {"pool": pool}
    return {"nodes": {"src": {"coro": "Source.range", "args": {"stop": n}}, "add": add,
                      "mul": {"coro": "Number.multiply", "args": {"factor": 2}},
                      "sink": {"coro": "Flow.identity"}},
            "graph": {"src": ["add"], "add": ["mul"], "mul": ["sink"], "sink": None}}


async def run_counted(spec: dict[str, Any], remote: RemoteConfig | None) -> tuple[float, int, int]:
    """(seconds, count, sum) of one run, results summed as they come."""
    p = Plumber(spec, registry=REGISTRY, remote=remote, collect=True)
    count = total = 0
    t0 = time.perf_counter()
    async for batch in p.result_batches():
        count += len(batch)
        total += sum(r.value for r in batch)
    report = await p.wait()
    dt = time.perf_counter() - t0
    if report.status.value != "completed":
        raise SystemExit(f"run failed: {report.error}")
    return dt, count, total


def row(name: str, impl: str, figure: str, ok: bool, extra: str = "") -> None:
    print(f"{name:<4} {impl:<22} {figure:>16}  {'ok' if ok else 'FAIL'}  {extra}".rstrip())


async def bench_w1(env: Env, quick: bool) -> None:
    n_big = 20_000 if quick else 200_000
    sizes = [1, 16, 64, 256]
    n = n_big
    dt, count, total = await run_counted(w1_spec(n, None), None)
    good = count == n and total == sum((i + 1) * 2 for i in range(n))
    local = n / dt
    row("W1", "in-process", f"{local:,.0f} it/s", good)
    for b in sizes:
        n = (2_000 if quick else 20_000) if b == 1 else n_big
        dt, count, total = await run_counted(w1_spec(n, "bench"), config(env.url, b))
        good = count == n and total == sum((i + 1) * 2 for i in range(n))
        row("W1", f"pool batch {b}", f"{n / dt:,.0f} it/s", good,
            f"({n / dt / local:.0%} of in-process, {n} items)")


async def bench_latency(env: Env, quick: bool) -> None:
    n = 200 if quick else 1000
    add = REGISTRY.get("Number.add")
    assert add is not None
    sent: dict[int, float] = {}
    lat: list[float] = []
    got = asyncio.Event()

    async def paced(self: Any, output_q: Any, n: int) -> None:
        for i in range(n):
            got.clear()
            sent[i] = time.perf_counter()
            await output_q.put(i)
            await got.wait()

    async def sink(self: Any, q_elt: tuple[Any, ...]) -> Any:
        lat.append(time.perf_counter() - sent[q_elt[0] - 1])
        got.set()
        return q_elt[0]

    fns = {"paced": paced, "Number.add": add.fn, "sink": sink}

    def spec(pool: str | None) -> dict[str, Any]:
        a: dict[str, Any] = {"coro": "Number.add", "args": {"n": 1}}
        if pool:
            a["properties"] = {"pool": pool}
        return {"nodes": {"src": {"coro": "paced", "args": {"n": n}}, "add": a,
                          "sink": {"coro": "sink"}},
                "graph": {"src": ["add"], "add": ["sink"], "sink": None}}

    results = {}
    for pool in (None, "bench"):
        lat.clear()
        remote = config(env.url, 64) if pool else None
        if remote is not None:
            remote = RemoteConfig(**{**remote.__dict__, "registry_digest": None})
        p = Plumber(spec(pool), coro_map=fns.__getitem__, remote=remote)
        report = await p.run()
        ok = report.status.value == "completed" and len(lat) == n
        lat.sort()
        results[pool] = (lat[len(lat) // 2], lat[int(len(lat) * 0.99)], ok)
    (l50, l99, lok), (r50, r99, rok) = results[None], results["bench"]
    row("LAT", "in-process round trip", f"{l50 * 1e3:.3f} ms p50", lok, f"p99 {l99 * 1e3:.3f} ms")
    row("LAT", "pool round trip", f"{r50 * 1e3:.3f} ms p50", rok, f"p99 {r99 * 1e3:.3f} ms")
    row("LAT", "added per hop", f"{(r50 - l50) / 2 * 1e3:.3f} ms p50", lok and rok,
        f"p99 {(r99 - l99) / 2 * 1e3:.3f} ms (two hops per pool node)")


def w3_spec(n: int) -> dict[str, Any]:
    def stage(pool: str | None, conc: int) -> dict[str, Any]:
        props: dict[str, Any] = {"concurrency": conc}
        if pool:
            props["pool"] = pool
        return {"coro": "Flow.delay", "args": {"seconds": 0.01}, "properties": props}

    return {"nodes": {"src": {"coro": "Source.range", "args": {"stop": n}},
                      "s1": stage(None, 100), "s2": stage("w3", 8), "s3": stage(None, 100),
                      "sink": {"coro": "Flow.identity"}},
            "graph": {"src": ["s1"], "s1": ["s2"], "s2": ["s3"], "s3": ["sink"], "sink": None}}


async def bench_w3(env: Env, quick: bool) -> None:
    n = 400 if quick else 2000
    base = None
    for workers in (1, 2, 4):
        while len(env.w3) < workers:
            env.w3.append(await env.worker("w3"))
        dt, count, total = await run_counted(w3_spec(n), config(env.url, 64))
        rate = n / dt
        base = base or rate
        good = count == n and total == n * (n - 1) // 2
        row("W3", f"pool on {workers} worker{'s' if workers > 1 else ''}", f"{rate:,.0f} it/s",
            good, f"x{rate / base:.2f} of one worker (ideal {800 * workers} it/s)")


async def bench_recovery(env: Env, quick: bool) -> None:
    n = 1500 if quick else 4000
    victim = await env.worker("rec")
    await env.worker("rec")
    spec = {"nodes": {"src": {"coro": "Source.range", "args": {"stop": n}},
                      "d": {"coro": "Flow.delay", "args": {"seconds": 0.002},
                            "properties": {"pool": "rec", "concurrency": 8, "queue_size": 8}},
                      "sink": {"coro": "Flow.identity"}},
            "graph": {"src": ["d"], "d": ["sink"], "sink": None}}
    p = Plumber(spec, registry=REGISTRY, remote=config(env.url, 64), collect=True)
    count = total = 0
    killed_at: float | None = None
    last = time.perf_counter()
    longest = 0.0
    async for batch in p.result_batches():
        now = time.perf_counter()
        if killed_at is not None:
            longest = max(longest, now - max(last, killed_at))
        last = now
        count += len(batch)
        total += sum(r.value for r in batch)
        if killed_at is None and count >= n // 4:
            victim.send_signal(signal.SIGKILL)
            killed_at = time.perf_counter()
    report = await p.wait()
    good = report.status.value == "completed" and count == n and total == n * (n - 1) // 2
    row("REC", "SIGKILL 1 of 2 workers", f"{longest:.2f} s pause", good,
        f"(ack_wait {ACK_WAIT} s; every result once, in order)")


async def amain(quick: bool) -> None:
    print(f"python: {platform.python_version()}  cpus: {os.cpu_count()}  quick: {quick}")
    env = Env()
    await env.start()
    try:
        await env.worker("bench")
        await bench_w1(env, quick)
        await bench_latency(env, quick)
        await bench_w3(env, quick)
        await bench_recovery(env, quick)
    finally:
        await env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small inputs (the smoke test)")
    args = ap.parse_args()
    asyncio.run(amain(args.quick))


if __name__ == "__main__":
    main()
