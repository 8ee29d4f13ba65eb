"""Distributed mode under pressure, against real nats-server and worker processes: a worker's
memory stays flat while a client stalls and resumes over 100,000 items, and killing a worker at
random points (8 seeds) never loses an item nor stalls the output longer than ack_wait + 1 s."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest
from natsutil import NatsServer, Workers, broker_state, nats_server, wait_until
from serverutil import Recorder, chain_spec, serving

pytestmark = pytest.mark.timeout(240)

ACK_WAIT = 1.0
MB = 1024 * 1024


@pytest.fixture
async def broker() -> AsyncIterator[NatsServer]:
    async with nats_server() as srv:
        yield srv


@pytest.fixture
async def workers(broker: NatsServer) -> AsyncIterator[Workers]:
    w = Workers(broker.url, env={"PIPELINES_ACK_WAIT": str(ACK_WAIT), "PIPELINES_LIVE_TTL": "2.0"})
    try:
        yield w
    finally:
        await w.close()


def remote_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {"nats_url": url, "ack_wait": ACK_WAIT, "live_ttl": 2.0, "broker_timeout": 5.0,
            "demo_sleep_scale": 0.01} | extra


class TimedRecorder(Recorder):
    """A Recorder that also notes when each `results` event arrived, and counts its items."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []
        self.received = 0

    async def _on_any(self, event: str, *args: Any) -> None:
        if event == "results":
            self.arrivals.append(time.monotonic())
            self.received += len(args[0]["items"])
        await super()._on_any(event, *args)


async def connect(url: str) -> TimedRecorder:
    rec = TimedRecorder()
    await rec.client.connect(url, transports=["websocket"])
    return rec


@pytest.mark.slow
async def test_worker_rss_stays_flat_while_the_client_stalls(broker: NatsServer,
                                                             workers: Workers) -> None:
    """100,000 items through a pool node; the client stops reading twice (after 10,000 and
    90,000 results). While it stalls, every edge subject of the run stays at or under its cap
    (sampled) and the results stop; while items flow, a subject may also hold up to `cap`
    messages whose results the driver already has and whose input ack is still on its way from
    the worker (it acks after its results are stored), so at most 2 x cap. The worker's RSS,
    sampled all along, never grows more than 30 MB over its size after the first 10,000 items."""
    n, cap = 100_000, 16
    proc = await workers.start("cpu")
    worker = psutil.Process(proc.pid)
    spec = chain_spec({"coro": "Source.range", "args": {"stop": n}},
                      {"coro": "Number.add", "args": {"n": 1},
                       "properties": {"pool": "cpu", "queue_size": cap}},
                      {"coro": "Flow.identity"})
    rss: list[int] = []
    depths: list[int] = []
    sampling = True
    pid: str | None = None

    over: list[tuple[str, int]] = []

    async def edge_depths() -> list[int]:
        state = await broker_state(broker.url, pid)
        found = [(s, k) for s, k in state["subjects"].items() if s.startswith(("PL_cpu:", "PLR:"))]
        over.extend((s, k) for s, k in found if k > cap)
        return [k for _, k in found]

    async def sample() -> None:  # the whole run: the worker's RSS, and the run's edge subjects
        while sampling:
            rss.append(worker.memory_info().rss)
            if pid is not None:
                depths.extend(await edge_depths())
            await asyncio.sleep(0.05)

    async with serving(**remote_settings(broker.url)) as (_app, url):
        c = await connect(url)
        sampler = asyncio.create_task(sample())
        try:
            ack = await c.call("process_msg", spec, {"results": "batch", "metrics": True,
                                                     "metrics_interval": 0.1})
            assert ack["ok"], ack
            await wait_until(lambda: bool(c.got("metrics")), within=30)
            pid = c.got("metrics")[0]["nodes"]["n1"]["remote_id"]
            baseline = 0
            for stall_at in (10_000, 90_000):
                await wait_until(lambda at=stall_at: c.received >= at, within=120)  # type: ignore[misc]
                hold = asyncio.Event()
                c.hold = hold
                if not baseline:
                    baseline = worker.memory_info().rss
                # Stalled: the run fills its edges to their caps and stops (the results stop
                # coming once the credit window is full); then sample the edges for ~1 s.
                counts: list[int] = []

                def settled(counts: list[int] = counts) -> bool:
                    counts.append(c.received)
                    return len(counts) >= 5 and len(set(counts[-5:])) == 1

                await wait_until(settled, within=30, interval=0.1)
                stalled: list[int] = []
                for _ in range(10):
                    stalled.extend(await edge_depths())
                    await asyncio.sleep(0.1)
                assert c.received < n
                assert max(stalled, default=0) <= cap, stalled
                c.hold = None
                hold.set()
            done = await c.wait_done(within=120)
        finally:
            sampling = False
            await sampler
            await c.close()
    assert done["status"] == "completed", (done["error"], workers.logs())
    assert c.received == n
    assert c.results() == [i + 1 for i in range(n)]
    assert depths and max(depths) <= 2 * cap, over
    peak = max(rss)
    print(f"worker RSS: {baseline / MB:.1f} MB after 10,000 items, peak {peak / MB:.1f} MB, "
          f"end {rss[-1] / MB:.1f} MB, {len(rss)} samples; {len(depths)} edge depth samples, "
          f"max {max(depths)} (cap {cap})")
    assert peak - baseline <= 30 * MB, (baseline, peak)


@pytest.mark.slow
async def test_sigkill_at_random_points_recovers_within_ack_wait(broker: NatsServer,
                                                                 workers: Workers) -> None:
    """8 seeds, each a short run on two workers: SIGKILL one at a random point. Every result
    arrives once and in order, and the output never pauses longer than ack_wait + 1 s from the
    kill on (measured from the client's receive times)."""
    n = 600
    spec = chain_spec({"coro": "Source.range", "args": {"stop": n}},
                      {"coro": "Flow.delay", "args": {"seconds": 0.002},
                       "properties": {"pool": "cpu", "concurrency": 8, "queue_size": 8}},
                      {"coro": "Flow.identity"})
    live = [await workers.start("cpu", name="a0"), await workers.start("cpu", name="b0")]
    pauses: list[float] = []
    async with serving(**remote_settings(broker.url)) as (_app, url):
        for seed in range(8):
            rng = random.Random(seed)
            c = await connect(url)
            try:
                # A small window: results come in many small batches, so a pause shows.
                ack = await c.call("process_msg", spec, {"results": "batch", "window": 16})
                assert ack["ok"], ack
                kill_after = rng.randint(20, n // 2)
                await wait_until(lambda r=c, at=kill_after: r.received >= at, within=60)  # type: ignore[misc]
                victim = live.pop(rng.randrange(len(live)))
                killed_at = time.monotonic()
                await workers.kill(victim)
                done = await c.wait_done(within=60)
            finally:
                await c.close()
            assert done["status"] == "completed", (seed, done["error"], workers.logs())
            assert c.results() == list(range(n)), seed
            after = [killed_at] + [t for t in c.arrivals if t > killed_at]
            pause = max((b - a for a, b in zip(after, after[1:], strict=False)), default=0.0)
            pauses.append(pause)
            # A fresh worker takes the victim's place for the next seed.
            live.append(await workers.start("cpu", name=f"r{seed}"))
    print("output pause after the kill per seed (s): " + ", ".join(f"{p:.2f}" for p in pauses))
    assert max(pauses) <= ACK_WAIT + 1.0, pauses
