"""Distributed mode: nodes on worker pools over NATS JetStream, against real nats-server and
worker processes (started here on free ports, killed at the end)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from natsutil import NatsServer, Workers, broker_state, nats_server, wait_until
from serverutil import chain_spec, connected, serving

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def broker() -> AsyncIterator[NatsServer]:
    async with nats_server() as srv:
        yield srv


@pytest.fixture
async def workers(broker: NatsServer) -> AsyncIterator[Workers]:
    w = Workers(broker.url, env={"PIPELINES_ACK_WAIT": "1.0", "PIPELINES_LIVE_TTL": "2.0"})
    try:
        yield w
    finally:
        await w.close()


def remote_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {"nats_url": url, "ack_wait": 1.0, "live_ttl": 2.0, "broker_timeout": 5.0,
            "demo_sleep_scale": 0.01} | extra


def pooled(spec: dict[str, Any], nodes: list[str], pool: str = "cpu") -> dict[str, Any]:
    """A copy of `spec` with `nodes` placed on `pool`."""
    out = {"nodes": {k: dict(v) for k, v in spec["nodes"].items()}, "graph": dict(spec["graph"])}
    for n in nodes:
        out["nodes"][n]["properties"] = dict(out["nodes"][n].get("properties", {}), pool=pool)
    return out


async def run_spec(url: str, spec: dict[str, Any], options: dict[str, Any] | None = None,
                   within: float = 60.0) -> tuple[dict[str, Any], list[Any], Any]:
    """Run `spec` on the service at `url`; (done, results, recorder)."""
    async with connected(url) as c:
        ack = await c.call("process_msg", spec, options or {})
        assert ack["ok"], ack
        done = await c.wait_done(within=within)
        return done, c.results(), c


W1 = chain_spec(
    {"coro": "Source.range", "args": {"stop": 500}},
    {"coro": "Number.add", "args": {"n": 1}},
    {"coro": "Number.multiply", "args": {"factor": 2}},
    {"coro": "Flow.identity"},
)


async def test_pool_run_matches_in_process(broker: NatsServer, workers: Workers) -> None:
    """A chain with its middle nodes on a pool gives the in-process results, in order, with the
    report's counts and metrics that name the pool and its workers."""
    await workers.start("cpu")
    async with serving(**remote_settings(broker.url)) as (_app, url):
        local_done, local, _ = await run_spec(url, W1)
        done, remote, c = await run_spec(url, pooled(W1, ["n1", "n2"]), {"metrics": True,
                                                                          "metrics_interval": 0.1})
    assert local_done["status"] == "completed"
    assert done["status"] == "completed", (done["error"], workers.logs())
    assert remote == local == [(i + 1) * 2 for i in range(500)]
    for node in ("n1", "n2"):
        assert done["nodes"][node]["in"] == done["nodes"][node]["out"] == 500
    final = c.got("metrics")[-1]["nodes"]
    assert final["n1"]["pool"] == "cpu" and final["n1"]["workers"] == 1
    assert final["n1"]["per_worker"] == {"w0": 500}
    assert "pool" not in final["n3"]


async def test_no_pool_never_imports_nats() -> None:
    """A run without pool nodes does not load the NATS client at all."""
    code = (
        "import asyncio, sys\n"
        "from pipelines import Plumber\n"
        "from pipelines.remote import RemoteConfig\n"
        "async def src(self, q):\n    await q.put(1)\n"
        "async def f(self, x):\n    return x[0] + 1\n"
        "spec = {'nodes': {'a': {'coro': src}, 'b': {'coro': f}}, 'graph': {'a': ['b']}}\n"
        "r = asyncio.run(Plumber(spec, remote=RemoteConfig(), collect=True).run())\n"
        "assert r.status.value == 'completed', r\n"
        "print('nats' in sys.modules)\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and out.strip() == b"False"


def slow_chain(n: int, delay: float = 0.002, pool_conc: int = 8) -> dict[str, Any]:
    """src -> delay (pool) -> add 1 (pool) -> out: long enough to kill a worker in the middle."""
    return chain_spec(
        {"coro": "Source.range", "args": {"stop": n}},
        {"coro": "Flow.delay", "args": {"seconds": delay},
         "properties": {"pool": "cpu", "concurrency": pool_conc, "queue_size": 8}},
        {"coro": "Number.add", "args": {"n": 1}, "properties": {"pool": "cpu"}},
        {"coro": "Flow.identity"},
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_sigkill_a_worker_loses_nothing(broker: NatsServer, workers: Workers,
                                              seed: int) -> None:
    """SIGKILL one of two workers at a random point: every input still yields its result,
    once and in order, and the output stalls no longer than about ack_wait."""
    import random
    import time

    rng = random.Random(seed)
    victim = await workers.start("cpu", name="victim")
    await workers.start("cpu", name="survivor")
    n = 1500
    async with serving(**remote_settings(broker.url)) as (_app, url), connected(url) as c:
        ack = await c.call("process_msg", slow_chain(n), {"metrics": True})
        assert ack["ok"], ack
        kill_after = rng.randint(50, 400)
        await wait_until(lambda: len(c.results()) >= kill_after, within=30)
        killed_at = time.monotonic()
        await workers.kill(victim)
        progress: list[float] = [killed_at]  # when the count of results last grew
        seen = len(c.results())
        while not c.got("done"):
            await asyncio.sleep(0.01)
            if len(c.results()) > seen:
                seen = len(c.results())
                progress.append(time.monotonic())
            assert time.monotonic() - killed_at < 60, "the run did not end"
        done = c.got("done")[0]
        results = c.results()
    assert done["status"] == "completed", (done["error"], workers.logs())
    assert results == [i + 1 for i in range(n)]
    gaps = [b - a for a, b in zip(progress, progress[1:], strict=False)]
    # ack_wait is 1 s here; generous slack for a loaded machine (the bench measures it).
    assert max(gaps, default=0.0) < 1.0 + 4.0


def trickle(n: int) -> dict[str, Any]:
    """Items that arrive over a few seconds (10 ms apart), so a run outlives a redelivery."""
    return chain_spec({"coro": "Source.range", "args": {"stop": n}},
                      {"coro": "Flow.delay", "args": {"seconds": 0.01},
                       "properties": {"concurrency": 1}},
                      {"coro": "Number.add", "args": {"n": 1}, "properties": {"pool": "cpu"}},
                      {"coro": "Flow.identity"})


async def test_exit_after_publish_before_ack_gives_each_result_once(
        broker: NatsServer, workers: Workers) -> None:
    """A worker that published its results and died before acking: the redelivered message is
    run again and re-published; JetStream's de-dup (Msg-Id) drops the copy."""
    await workers.start("cpu", "--concurrency", "1", name="faulty",
                          faults="exit_after_publish=1")
    spec = trickle(300)
    async with serving(**remote_settings(broker.url)) as (_app, url), connected(url) as c:
        assert (await c.call("process_msg", spec, {"metrics": True,
                                                   "metrics_interval": 0.1}))["ok"]
        await wait_until(lambda: workers.procs[0].returncode is not None, within=30)
        await workers.start("cpu", name="healthy")
        done = await c.wait_done(within=60)
    assert done["status"] == "completed", (done["error"], workers.logs())
    assert c.results() == [i + 1 for i in range(300)]
    assert workers.procs[0].returncode == 17  # it did exit at the fault point
    final = c.got("metrics")[-1]["nodes"]["n2"]
    assert final["duplicates"] == 0  # the broker dropped the re-publish


async def test_dedup_window_too_short_the_sink_drops_the_copy(broker: NatsServer) -> None:
    """The same fault with a de-dup window shorter than the stall: the re-published results
    reach the driver twice, and its sink's own de-dup keeps each result once."""
    env = {"PIPELINES_ACK_WAIT": "1.0", "PIPELINES_DEDUP_WINDOW": "0.2",
           "PIPELINES_LIVE_TTL": "2.0"}
    w = Workers(broker.url, env=env)
    try:
        await w.start("cpu", "--concurrency", "1", name="faulty",
                          faults="exit_after_publish=1")
        spec = trickle(300)
        settings = remote_settings(broker.url, dedup_window=0.2)
        async with serving(**settings) as (_app, url), connected(url) as c:
            assert (await c.call("process_msg", spec, {"metrics": True,
                                                       "metrics_interval": 0.1}))["ok"]
            await wait_until(lambda: w.procs[0].returncode is not None, within=30)
            await w.start("cpu", name="healthy")
            done = await c.wait_done(within=60)
        assert done["status"] == "completed", (done["error"], w.logs())
        assert c.results() == [i + 1 for i in range(300)]
        final = c.got("metrics")[-1]["nodes"]["n2"]
        assert final["duplicates"] > 0  # copies did arrive, and were dropped at the sink
    finally:
        await w.close()


async def nothing_left(url: str, pid: str, workers: Workers | None = None,
                       within: float = 5.0) -> float:
    """Wait until the broker holds no message, subject, key or consumer of `pid` (and no live
    worker lists it as active); return how long that took."""
    import json

    import nats

    async def clean() -> bool:
        state = await broker_state(url, pid)
        if state["subjects"] or state["consumers"]:
            return False
        if workers is None:
            return True
        nc = await nats.connect(url)
        try:
            kv = await nc.jetstream().key_value("pl_workers")
            for key in await kv.keys():
                info = json.loads((await kv.get(key)).value)
                if pid in info.get("active", []):
                    return False
        finally:
            await nc.close()
        return True

    return await wait_until(clean, within=within, interval=0.05)


async def start_slow_run(c: Any, n: int = 5000) -> str:
    """Start a long pool run, wait until results flow; return its id in the broker."""
    ack = await c.call("process_msg", slow_chain(n, delay=0.005), {"metrics": True,
                                                                    "metrics_interval": 0.1})
    assert ack["ok"], ack
    await wait_until(lambda: len(c.results()) >= 20 and c.got("metrics"), within=30)
    pid: str = c.got("metrics")[-1]["nodes"]["n1"]["remote_id"]
    return pid


@pytest.mark.parametrize("how", ["cancel", "disconnect"])
async def test_cancel_and_disconnect_leave_nothing(broker: NatsServer, workers: Workers,
                                                   how: str) -> None:
    await workers.start("cpu")
    async with serving(**remote_settings(broker.url)) as (_app, url):
        async with connected(url) as c:
            pid = await start_slow_run(c)
            running = await broker_state(broker.url, pid)
            assert running["subjects"] and running["consumers"]
            if how == "cancel":
                assert (await c.call("cancel"))["ok"]
                done = await c.wait_done()
                assert done["status"] == "cancelled"
        # about a second on a quiet machine; generous here for a loaded one
        took = await nothing_left(broker.url, pid, workers, within=15.0)
    assert took < 15.0


@pytest.mark.slow
async def test_killed_driver_is_purged_by_the_janitor(broker: NatsServer) -> None:
    """SIGKILL the server mid-run: its liveness key expires and the workers' janitor purges
    every message, subject, consumer and key of its pipeline."""
    from serverutil import server_process

    env = {"PIPELINES_ACK_WAIT": "1.0", "PIPELINES_LIVE_TTL": "1.0"}
    w = Workers(broker.url, env=env)
    try:
        await w.start("cpu")
        flags = ("--nats-url", broker.url, "--test-coroutines", "--live-ttl", "1.0",
                 "--ack-wait", "1.0")
        async with server_process(*flags) as (proc, url):
            async with connected(url) as c:
                pid = await start_slow_run(c)
                assert (await broker_state(broker.url, pid))["subjects"]
                proc.kill()
                await proc.wait()
                killed = asyncio.get_running_loop().time()
        took = await nothing_left(broker.url, pid, w, within=10.0)
        elapsed = asyncio.get_running_loop().time() - killed
        # ttl 1 s + a janitor sweep (0.5 s): about 1.5 s; slack for a loaded machine
        assert elapsed < 10.0, elapsed
        assert took >= 0
    finally:
        await w.close()


async def keep_one_alive(w: Workers, stop: asyncio.Event, **kw: Any) -> None:
    """Start a worker whenever none is running (the poison kills each one that meets it)."""
    while not stop.is_set():
        if all(p.returncode is not None for p in w.procs):
            await w.start("cpu", **kw)
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("on_error", ["skip", "fail"])
async def test_poison_item_becomes_worker_crashed(broker: NatsServer, on_error: str) -> None:
    """An item that kills every worker that runs it: after max_deliver deliveries it is an item
    error `worker_crashed`, which the node's on_error handles; the other items are fine."""
    env = {"PIPELINES_ACK_WAIT": "1.0", "PIPELINES_MAX_DELIVER": "2", "PIPELINES_LIVE_TTL": "2.0"}
    w = Workers(broker.url, env=env)
    stop = asyncio.Event()
    keeper = asyncio.create_task(keep_one_alive(w, stop, faults="exit_on_item=7"))
    try:
        spec = chain_spec({"coro": "Source.range", "args": {"stop": 40}},
                          {"coro": "Number.add", "args": {"n": 1},
                           "properties": {"pool": "cpu", "on_error": on_error}},
                          {"coro": "Flow.identity"})
        async with serving(**remote_settings(broker.url, max_deliver=2)) as (_app, url):
            done, results, c = await run_spec(url, spec, within=90)
    finally:
        stop.set()
        await keeper
        logs = w.logs()
        await w.close()
    if on_error == "skip":
        assert done["status"] == "completed", done["error"]
        assert results == [i + 1 for i in range(40) if i != 7], logs
        assert done["nodes"]["n1"]["errors"] == 1
        errs = [e for e in c.got("pipeline_error") if e["code"] == "node_error"]
        assert [(e["item"], e["error_type"]) for e in errs] == [("(7,)", "worker_crashed")]
    else:
        assert done["status"] == "failed"
        assert "worker_crashed" in done["error"]["message"], done["error"]
    assert sum(1 for p in w.procs if p.returncode == 19) >= 2  # it did kill workers


async def test_broker_restart_mid_run_completes_once(broker: NatsServer,
                                                     workers: Workers) -> None:
    """nats-server killed and restarted on its store: the run completes, each result once."""
    await workers.start("cpu")
    async with serving(**remote_settings(broker.url)) as (_app, url), connected(url) as c:
        assert (await c.call("process_msg", slow_chain(1500)))["ok"]
        await wait_until(lambda: len(c.results()) >= 200, within=30)
        await broker.kill()
        await asyncio.sleep(0.3)
        await broker.start()
        done = await c.wait_done(within=60)
    assert done["status"] == "completed", (done["error"], workers.logs())
    assert c.results() == [i + 1 for i in range(1500)]


async def test_broker_gone_fails_the_run_others_unaffected(broker: NatsServer,
                                                           workers: Workers) -> None:
    """nats-server killed for good: the pool run fails with broker_unavailable within the
    configured timeout; a run without pool nodes on the same server never notices."""
    await workers.start("cpu")
    settings = remote_settings(broker.url, broker_timeout=1.5)
    async with serving(**settings) as (_app, url), connected(url) as c:
        assert (await c.call("process_msg", slow_chain(100_000 - 1)))["ok"]
        await wait_until(lambda: len(c.results()) >= 50, within=30)
        await broker.kill()
        t0 = asyncio.get_running_loop().time()
        local_done, local, _ = await run_spec(url, W1)
        done = await c.wait_done(within=30)
        took = asyncio.get_running_loop().time() - t0
    assert local_done["status"] == "completed" and len(local) == 500
    assert done["status"] == "failed"
    assert done["error"]["code"] == "broker_unavailable", done["error"]
    assert took < 1.5 + 5.0, took


def issues_of(answer: dict[str, Any]) -> list[tuple[str, str]]:
    assert answer["ok"] is False, answer
    return [(e["path"], e["code"]) for e in answer["error"]["errors"]]


async def test_placement_refusals(broker: NatsServer) -> None:
    """Sources, zips and outputs stay on the driver; a pool must be one the server accepts;
    without a broker no pool is accepted. Each refusal names the node."""
    src = {"coro": "Source.range", "args": {"stop": 3}, "properties": {"pool": "cpu"}}
    zipped = {
        "nodes": {"a": {"coro": "Source.range", "args": {"stop": 3}},
                  "b": {"coro": "Source.range", "args": {"stop": 3}},
                  "z": {"coro": "Number.sum", "properties": {"pool": "cpu"}},
                  "out": {"coro": "Flow.identity"}},
        "graph": {"a": ["z"], "b": ["z"], "z": ["out"], "out": None},
    }
    async with serving(**remote_settings(broker.url, pools=["cpu"])) as (_app, url), \
            connected(url) as c:
        got = issues_of(await c.call("validate", chain_spec(src, {"coro": "Flow.identity"})))
        assert got == [("nodes.src.properties.pool", "placement_unsupported")]
        out_on_pool = chain_spec({"coro": "Source.range", "args": {"stop": 3}},
                                 {"coro": "Flow.identity", "properties": {"pool": "cpu"}})
        assert issues_of(await c.call("validate", out_on_pool)) == [
            ("nodes.n1.properties.pool", "placement_unsupported")]
        assert issues_of(await c.call("validate", zipped)) == [
            ("nodes.z.properties.pool", "placement_unsupported")]
        gpu = pooled(W1, ["n1"], pool="gpu")
        answer = await c.call("process_msg", gpu)
        assert issues_of(answer) == [("nodes.n1.properties.pool", "unknown_pool")]
        assert "'gpu'" in answer["error"]["message"] and "cpu" in answer["error"]["message"]
    async with serving() as (_app, url), connected(url) as c:  # no broker configured
        answer = await c.call("validate", pooled(W1, ["n1"]))
        assert issues_of(answer) == [("nodes.n1.properties.pool", "unknown_pool")]


async def test_registry_mismatch_is_refused(broker: NatsServer, workers: Workers) -> None:
    """A worker whose registry differs from the server's (here: without the Test.* nodes)
    announces another hash; the run is refused with `registry_mismatch`, naming the worker."""
    await workers.start("cpu", name="other", test_coroutines=False)
    async with serving(**remote_settings(broker.url)) as (_app, url):
        done, results, _ = await run_spec(url, pooled(W1, ["n1"]))
    assert done["status"] == "failed" and results == []
    assert done["error"]["code"] == "registry_mismatch", done["error"]
    assert "'other'" in done["error"]["message"]


async def test_unserializable_result_is_an_item_error(broker: NatsServer,
                                                      workers: Workers) -> None:
    """A pool node's result JSON cannot carry: an item error `unserializable_value`, handled
    by on_error (skip), never a lost or silently changed value."""
    await workers.start("cpu")
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 3}},
                      {"coro": "Test.unserializable", "properties": {"pool": "cpu"}},
                      {"coro": "Flow.identity"})
    async with serving(**remote_settings(broker.url)) as (_app, url):
        done, results, c = await run_spec(url, spec)
    assert done["status"] == "completed" and results == []
    assert done["nodes"]["n1"]["errors"] == 3
    errs = [e for e in c.got("pipeline_error") if e["code"] == "node_error"]
    assert {e["error_type"] for e in errs} == {"unserializable_value"}


async def test_library_plumber_with_an_in_process_worker(broker: NatsServer) -> None:
    """The library side: a Plumber given a RemoteConfig, and a Worker of the same registry
    running as a task; same results as without the pool."""
    from pipelines import Plumber, Registry
    from pipelines.remote import RemoteConfig, Worker, registry_digest

    reg = Registry()

    @reg.source("src")
    async def src(self: Any, output_q: Any, n: int) -> None:
        for i in range(n):
            await output_q.put(i)

    @reg.processor("square")
    async def square(self: Any, q_elt: tuple[Any, ...]) -> Any:
        await asyncio.sleep(0)
        return q_elt[0] ** 2

    @reg.processor("keep")
    async def keep(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0]

    reg.freeze()
    spec = {"nodes": {"s": {"coro": "src", "args": {"n": 300}},
                      "sq": {"coro": "square", "properties": {"pool": "lib", "ordered": False}},
                      "k": {"coro": "keep"}},
            "graph": {"s": ["sq"], "sq": ["k"], "k": None}}
    cfg = RemoteConfig(nats_url=broker.url, ack_wait=1.0, live_ttl=2.0,
                       registry_digest=registry_digest(reg))
    worker = Worker(reg, "lib", cfg, name="inproc")
    task = asyncio.create_task(worker.run())
    try:
        p = Plumber(spec, registry=reg, remote=cfg, collect=True)
        values = [r.value async for r in p.results()]
        report = await p.wait()
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
    assert report.status.value == "completed", report.error
    assert sorted(values) == [i * i for i in range(300)]
    assert report.nodes["sq"].items_out == 300


async def test_stalled_client_keeps_every_edge_within_its_cap(broker: NatsServer,
                                                              workers: Workers) -> None:
    """A client that stops acknowledging: the driver's sink stops, the pool edge fills to its
    cap (queue_size messages) and stays there, and the source waits."""
    from server.keys import SESSIONS

    await workers.start("cpu")
    cap = 3
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 5_000}},
                      {"coro": "Number.add", "args": {"n": 1},
                       "properties": {"pool": "cpu", "queue_size": cap}},
                      {"coro": "Flow.identity"})
    async with serving(**remote_settings(broker.url, default_window=8)) as (app, url), \
            connected(url) as c:
        c.hold = asyncio.Event()
        assert (await c.call("process_msg", spec))["ok"]
        await wait_until(lambda: len(c.results()) >= 1, within=30)

        def n_metrics(node: str) -> dict[str, Any]:
            run = next(iter(app[SESSIONS].sessions.values())).run
            assert run is not None
            return run.plumber.metrics()["nodes"][node]  # type: ignore[no-any-return]

        samples: list[int] = []

        def settled() -> bool:  # the source's count stopped moving: everything is full
            samples.append(n_metrics("src")["out"])
            return len(samples) >= 4 and len(set(samples[-4:])) == 1

        await wait_until(settled, within=30, interval=0.2)
        pid = n_metrics("n1")["remote_id"]
        before = n_metrics("src")["out"]
        depths: list[int] = []
        for _ in range(10):
            state = await broker_state(broker.url, pid)
            depths += [n for s, n in state["subjects"].items()
                       if s.startswith(("PL_cpu:", "PLR:"))]
            await asyncio.sleep(0.1)
        assert max(depths, default=0) <= cap, depths
        # what the driver holds for the pool node is bounded by the same cap (in messages)
        assert n_metrics("n1")["inflight"] <= cap * 64
        assert n_metrics("src")["out"] == before < 5_000  # the source waits
        c.hold.set()
        done = await c.wait_done(within=60)
    assert done["status"] == "completed"
    assert c.results() == [i + 1 for i in range(5_000)]


async def test_stream_byte_cap_is_a_clear_error(broker: NatsServer) -> None:
    """A pool stream at its byte cap refuses a message: the run fails with `stream_full`,
    never losing the message silently."""
    env = {"PIPELINES_ACK_WAIT": "5.0", "PIPELINES_MAX_STREAM_BYTES": "20000"}
    w = Workers(broker.url, env=env)
    try:
        await w.start("cpu", faults="pause_after_fetch=30")  # holds what it takes
        spec = chain_spec({"coro": "Source.range", "args": {"stop": 200}},
                          {"coro": "Test.big", "args": {"size": 3000}},
                          {"coro": "Flow.identity", "properties": {"pool": "cpu"}},
                          {"coro": "Flow.identity"})
        settings = remote_settings(broker.url, ack_wait=5.0, max_stream_bytes=20000)
        async with serving(**settings) as (_app, url):
            done, _, _ = await run_spec(url, spec, within=30)
    finally:
        await w.close()
    assert done["status"] == "failed"
    assert done["error"]["code"] == "stream_full", done["error"]
    assert "n2" in (done["error"]["node"] or ""), done["error"]


async def test_metrics_count_items_per_worker(broker: NatsServer, workers: Workers) -> None:
    """Two workers share a pool's items; `/metrics` shows each worker's count (from its
    heartbeat) and the run's metrics split the node's items by worker."""
    import aiohttp

    await workers.start("cpu", "--concurrency", "2")
    await workers.start("cpu", "--concurrency", "2")
    spec = slow_chain(600, delay=0.003, pool_conc=4)
    async with serving(**remote_settings(broker.url)) as (_app, url):
        done, results, c = await run_spec(url, spec, {"metrics": True})
        assert done["status"] == "completed" and len(results) == 600
        per_worker = c.got("metrics")[-1]["nodes"]["n1"]["per_worker"]
        assert set(per_worker) == {"w0", "w1"} and sum(per_worker.values()) == 600

        async def scraped() -> bool:
            async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as r:
                text = await r.text()
            counts = {w: 0.0 for w in ("w0", "w1")}
            for line in text.splitlines():
                if line.startswith("pipelines_worker_items{"):
                    worker = line.split('worker="')[1].split('"')[0]
                    counts[worker] = float(line.rsplit(" ", 1)[1])
            return sum(counts.values()) == 1200 and all(counts.values())  # two pool nodes

        await wait_until(scraped, within=10, interval=0.2)


async def test_sigterm_worker_finishes_and_exits_zero(broker: NatsServer,
                                                      workers: Workers) -> None:
    """SIGTERM: the worker stops fetching, finishes (or hands back) what it holds, exits 0;
    another worker takes the rest and the run completes."""
    import signal

    first = await workers.start("cpu")
    async with serving(**remote_settings(broker.url)) as (_app, url), connected(url) as c:
        assert (await c.call("process_msg", slow_chain(1500)))["ok"]
        await wait_until(lambda: len(c.results()) >= 100, within=30)
        await workers.start("cpu")
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 15) == 0
        done = await c.wait_done(within=60)
    assert done["status"] == "completed", (done["error"], workers.logs())
    assert c.results() == [i + 1 for i in range(1500)]


async def test_result_larger_than_the_broker_takes_is_an_item_error(
        broker: NatsServer, workers: Workers) -> None:
    """A pool node's result larger than the broker's largest message: an item error
    `value_too_large` (the run goes on), not a message retried for ever."""
    await workers.start("cpu")
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 2}},
                      {"coro": "Test.big", "args": {"size": 2_000_000},
                       "properties": {"pool": "cpu"}},
                      {"coro": "Flow.identity"})
    async with serving(**remote_settings(broker.url)) as (_app, url):
        done, results, c = await run_spec(url, spec)
    assert done["status"] == "completed" and results == []
    errs = [e for e in c.got("pipeline_error") if e["code"] == "node_error"]
    assert [e["error_type"] for e in errs] == ["value_too_large"] * 2


async def test_stalled_worker_fills_the_edge_to_its_cap_and_no_more(broker: NatsServer,
                                                                    workers: Workers) -> None:
    """A worker that holds what it fetched: the pool edge fills up to its cap (queue_size
    messages, held ones included) and never beyond; the source waits."""
    from server.keys import SESSIONS

    await workers.start("cpu", faults="pause_after_fetch=30")
    cap = 3
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 5_000}},
                      {"coro": "Number.add", "args": {"n": 1},
                       "properties": {"pool": "cpu", "queue_size": cap}},
                      {"coro": "Flow.identity"})
    async with serving(**remote_settings(broker.url)) as (app, url), connected(url) as c:
        assert (await c.call("process_msg", spec))["ok"]

        def n_metrics(node: str) -> dict[str, Any]:
            run = next(iter(app[SESSIONS].sessions.values())).run
            assert run is not None
            return run.plumber.metrics()["nodes"][node]  # type: ignore[no-any-return]

        samples: list[int] = []

        def settled() -> bool:
            samples.append(n_metrics("src")["out"])
            return len(samples) >= 4 and len(set(samples[-4:])) == 1

        await wait_until(settled, within=30, interval=0.2)
        pid = n_metrics("n1")["remote_id"]
        depths: list[int] = []
        for _ in range(8):
            state = await broker_state(broker.url, pid)
            depths += [n for s, n in state["subjects"].items() if s.startswith("PL_cpu:")]
            await asyncio.sleep(0.1)
        assert max(depths) == cap, depths  # full, and not one message more
        assert n_metrics("src")["out"] == samples[-1] < 5_000
        assert (await c.call("cancel"))["ok"]
        await c.wait_done()
