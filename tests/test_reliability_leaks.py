"""Leaks: 1,000 mixed sessions, then everything is back to its baseline.

Sessions cycle through five endings: clean (run to `done`, disconnect), abrupt (the websocket
dropped mid-stream with no goodbye), invalid (a rejected spec), failing (a node with
`on_error: fail`) and cancelled. After a settle time of ping interval + ping timeout + 5 s at
most, the asyncio tasks, engine.io sockets, the session registry, open file descriptors,
`asyncio.Queue` objects and the engine's channels and plumbers are back to their baseline.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

import pytest
from rawsio import RawSio
from serverutil import chain_spec, connected, serve

from pipelines import Channel, Plumber
from server.keys import SESSIONS, SIO

__all__: list[str] = []

SESSIONS_TOTAL = 1000
PARALLEL = 20
PING = 1.0
KINDS = ("clean", "abrupt", "invalid", "failing", "cancelled")

SMALL = chain_spec({"coro": "Source.range", "args": {"stop": 20}}, {"coro": "Flow.identity"})
LONG = chain_spec({"coro": "Source.range", "args": {"stop": 100_000}},
                  {"coro": "Flow.delay", "args": {"seconds": 0.01}})
FAILING = chain_spec({"coro": "Source.range", "args": {"stop": 50}},
                     {"coro": "Test.fail_at", "args": {"k": 10}, "properties": {"on_error": "fail"}})
INVALID = chain_spec({"coro": "Source.range", "args": {"stop": 5}}, {"coro": "os.system"})


async def one_session(url: str, kind: str) -> None:
    if kind == "abrupt":
        raw = await RawSio.connect(url)
        await raw.emit("process_msg", LONG, {"results": "batch", "window": 8})
        await raw.wait_event("pipeline_started")
        # Drop the TCP connection: no socket.io disconnect, no websocket close frame.
        await raw.session.close()
        return
    async with connected(url) as c:
        if kind == "invalid":
            ack = await c.call("process_msg", INVALID)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid_spec"
            return
        spec = {"clean": SMALL, "failing": FAILING, "cancelled": LONG}[kind]
        ack = await c.call("process_msg", spec, {"results": "batch"})
        assert ack["ok"] is True, ack
        if kind == "cancelled":
            await c.wait("pipeline_started")
            assert (await c.call("cancel"))["ok"] is True
        done = await c.wait_done(within=20)
        want = {"clean": "completed", "failing": "failed", "cancelled": "cancelled"}[kind]
        assert done["status"] == want, done


async def run_sessions(url: str, total: int) -> None:
    todo = iter(range(total))

    async def worker() -> None:
        for i in todo:
            await one_session(url, KINDS[i % len(KINDS)])

    async with asyncio.TaskGroup() as tg:
        for _ in range(PARALLEL):
            tg.create_task(worker())


def snapshot(app: Any) -> dict[str, int]:
    gc.collect()
    objects = gc.get_objects()
    return {
        "tasks": len(asyncio.all_tasks()),
        "engineio_sockets": len(app[SIO].eio.sockets),
        "sessions": len(app[SESSIONS]),
        "running": app[SESSIONS].running(),
        "fds": len(os.listdir("/proc/self/fd")),
        "asyncio_queues": sum(1 for o in objects if isinstance(o, asyncio.Queue)),
        "channels": sum(1 for o in objects if isinstance(o, Channel)),
        "plumbers": sum(1 for o in objects if isinstance(o, Plumber)),
    }


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_thousand_mixed_sessions_leave_nothing_behind() -> None:
    # Every session comes from 127.0.0.1, and abrupt ones hold their connection until the ping
    # timeout: the per-address caps are raised here, since this test is about leaks, not
    # admission (tests/test_hostile_handshakes.py and test_hostile_cpu.py hold those).
    per_address = {"max_connections_per_address": 5000, "max_sessions_per_address": 5000,
                   "handshakes_per_second": 5000.0, "handshake_burst": 5000,
                   "address_cpu_share": 10.0, "address_cpu_burst": 10.0}
    async with serve(ping_interval=PING, ping_timeout=PING, submission_burst=10,
                     **per_address) as url:
        app = serve.last_app  # type: ignore[attr-defined]
        await run_sessions(url, 2 * len(KINDS))  # warm-up: imports, caches, first allocations
        await asyncio.sleep(2 * PING + 0.5)
        baseline = snapshot(app)
        t0 = time.monotonic()
        # What the test process holds from the tests before this one is not this test's
        # business: frozen while the sessions run, the collector's full passes skip it (on a
        # slow machine they stalled this process's server for over a second).
        gc.freeze()
        try:
            await run_sessions(url, SESSIONS_TOTAL)
        finally:
            gc.unfreeze()
        ran = time.monotonic() - t0
        settle_limit = 2 * PING + 5
        t1 = time.monotonic()
        now = snapshot(app)
        while any(now[k] > baseline[k] for k in baseline):
            if time.monotonic() - t1 > settle_limit:
                break
            await asyncio.sleep(0.25)
            now = snapshot(app)
        settled = time.monotonic() - t1
        grown = {k: (baseline[k], now[k]) for k in baseline if now[k] > baseline[k]}
        assert not grown, (f"after {SESSIONS_TOTAL} sessions ({ran:.1f} s) and {settled:.1f} s "
                           f"of settling, above baseline: {grown}")
        assert now["sessions"] == now["engineio_sockets"] == now["running"] == 0
