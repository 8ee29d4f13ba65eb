"""Faults over real sockets, each beside a canary session that must not notice.

- a client disconnecting mid-stream, cleanly (socket.io goodbye) and abruptly (its process is
  killed with SIGKILL): the session, its run, its tasks and its engine.io socket are gone within a
  second (clean) or within ping interval + ping timeout (abrupt);
- a node that raises (skipped, or failing the run), hangs (per-item timeout, then cancel) or
  blocks the event loop (a watchdog names it);
- SIGTERM / SIGINT on a real `python server.py` while several clients stream: every client is
  told (`done` with code `shutdown`), what each got before is gap-free and in order, and the
  process exits 0 within 10 s.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from reliability_util import finish_canary, healthz, start_canary
from serverutil import chain_spec, connected, serve, server_process, wait_for

from server.keys import SESSIONS, SIO

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent
LONG = {"coro": "Source.range", "args": {"stop": 100_000}}


def run_tasks(pipeline_id: str) -> list[asyncio.Task[Any]]:
    """Live tasks of one run: the engine's (pipelines:<id>...) and the server's."""
    return [t for t in asyncio.all_tasks()
            if not t.done() and pipeline_id in t.get_name()]


def seqs_of(rec: Any) -> list[int]:
    return [i["seq"] for e, d in rec.order if e == "results" for i in d["items"]]


# --- disconnects ----------------------------------------------------------------------------

_KILLED_CLIENT = textwrap.dedent("""
    import asyncio, sys, socketio
    async def main(url):
        sio = socketio.AsyncClient(reconnection=False)
        got = asyncio.Event()
        @sio.on("results")
        async def on_results(data):
            got.set()
        await sio.connect(url, transports=["websocket"])
        ack = await sio.call("process_msg", ({"nodes": {"s": {"coro": "Source.range",
            "args": {"stop": 100000}}, "o": {"coro": "Flow.delay", "args": {"seconds": 0.01}}},
            "graph": {"s": ["o"], "o": None}}, {"results": "batch", "window": 16}))
        await got.wait()
        print(ack["pipeline_id"], flush=True)
        await asyncio.Event().wait()
    asyncio.run(main(sys.argv[1]))
""")


@pytest.mark.parametrize("how", ["clean", "abrupt"])
async def test_disconnect_mid_stream_frees_the_session(how: str) -> None:
    async with serve(ping_interval=1.0, ping_timeout=1.0) as url:
        app = serve.last_app  # type: ignore[attr-defined]
        manager, sio = app[SESSIONS], app[SIO]
        canary, hold, canary_id = await start_canary(url)
        try:
            if how == "clean":
                async with connected(url) as c:
                    ack = await c.call("process_msg", chain_spec(
                        LONG, {"coro": "Flow.delay", "args": {"seconds": 0.01}}),
                        {"results": "batch", "window": 16})
                    await c.wait("results", 2)
                    pid = ack["pipeline_id"]
                    assert run_tasks(pid)
                    t0 = time.monotonic()
                limit = 1.0
            else:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", _KILLED_CLIENT, url,
                    stdout=asyncio.subprocess.PIPE, cwd=ROOT)
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 20)
                pid = line.decode().strip()
                assert pid and run_tasks(pid), line
                proc.kill()  # no socket.io goodbye, no websocket close frame
                await proc.wait()
                t0 = time.monotonic()
                limit = 1.0 + 1.0 + 1.0  # ping interval + ping timeout, and a second of slack
            await wait_for(lambda: len(manager) == 1 and not run_tasks(pid)
                           and len(sio.eio.sockets) == 1, within=limit)
            freed = time.monotonic() - t0
            assert freed <= limit, freed
            await healthz(url)
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            if canary.client.connected:
                await canary.client.disconnect()


# --- faulty nodes ---------------------------------------------------------------------------


async def _run(url: str, spec: dict[str, Any], within: float = 15) -> tuple[Any, dict[str, Any]]:
    async with connected(url) as c:
        ack = await c.call("process_msg", spec, {"results": "batch", "metrics": False})
        assert ack["ok"] is True, ack
        done = await c.wait_done(within=within)
        await asyncio.sleep(0)
        assert len(c.got("done")) == 1
        return c, done


async def test_node_that_raises_is_skipped_and_named() -> None:
    async with serve() as url:
        canary, hold, canary_id = await start_canary(url)
        c, done = await _run(url, chain_spec(
            {"coro": "Source.range", "args": {"stop": 50}},
            {"coro": "Test.fail_at", "args": {"k": 7}, "properties": {"concurrency": 4}}))
        assert done["status"] == "completed", done
        values = [i["value"] for e, d in c.order if e == "results" for i in d["items"]]
        assert values == [v for v in range(50) if v != 7]
        assert seqs_of(c) == list(range(49))
        [err] = c.got("pipeline_error")
        assert err["code"] == "node_error" and err["node"] == "n1" and not err["terminal"]
        assert done["nodes"]["n1"]["errors"] == 1
        await finish_canary(canary, hold, canary_id)


async def test_node_that_fails_ends_its_run_only() -> None:
    async with serve() as url:
        canary, hold, canary_id = await start_canary(url)
        c, done = await _run(url, chain_spec(
            {"coro": "Source.range", "args": {"stop": 1000}},
            {"coro": "Test.fail_at", "args": {"k": 100}, "properties": {"on_error": "fail"}}))
        assert done["status"] == "failed" and done["error"]["code"] == "node_failed", done
        assert done["error"]["node"] == "n1" or "n1" in done["error"]["message"], done
        terminal = [e for e in c.got("pipeline_error") if e["terminal"]]
        assert len(terminal) == 1 and terminal[0]["code"] == "node_failed"
        seqs = seqs_of(c)
        assert seqs == list(range(len(seqs))) and len(seqs) <= 100
        await finish_canary(canary, hold, canary_id)


async def test_hanging_node_times_out_per_item_and_cancel_stops_it() -> None:
    async with serve() as url:
        canary, hold, canary_id = await start_canary(url)
        # With a per-item timeout, hung items are skipped and the run completes.
        c, done = await _run(url, chain_spec(
            {"coro": "Source.range", "args": {"stop": 10}},
            {"coro": "Test.hang", "args": {"k": 8}, "properties": {"timeout": 0.2}}))
        assert done["status"] == "completed", done
        assert [i["value"] for e, d in c.order if e == "results" for i in d["items"]] == list(
            range(8))
        assert done["nodes"]["n1"]["errors"] == 2
        # Without one, the run hangs until cancelled; cancel ends it within a second.
        async with connected(url) as h:
            ack = await h.call("process_msg", chain_spec(
                {"coro": "Source.range", "args": {"stop": 10}}, {"coro": "Test.hang"}))
            await h.wait("pipeline_started")
            t0 = time.monotonic()
            assert (await h.call("cancel"))["ok"] is True
            done = await h.wait_done(within=2)
            assert done["status"] == "cancelled" and time.monotonic() - t0 < 1.0
            await wait_for(lambda: not run_tasks(ack["pipeline_id"]), within=1)
        await finish_canary(canary, hold, canary_id)


async def test_node_blocking_the_loop_is_named_by_the_watchdog(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Test.block calls time.sleep(1): every session stalls for that second. The server
    cannot prevent it, but it must say which node did it (docs/promises.md, promise 1)."""
    caplog.set_level(logging.WARNING)
    async with serve(loop_block_threshold=0.3) as url:
        canary, hold, canary_id = await start_canary(url)
        c, done = await _run(url, {
            "nodes": {"s": {"coro": "Source.range", "args": {"stop": 2}},
                      "sleepy": {"coro": "Test.block", "args": {"seconds": 1.0},
                                 "properties": {"concurrency": 1}}},
            "graph": {"s": ["sleepy"], "sleepy": None}})
        assert done["status"] == "completed"
        # Its own session is told (non-terminal); the canary is not (finish_canary checks).
        await wait_for(lambda: any(e["code"] == "loop_blocked" for e in c.got("pipeline_error")),
                       within=2)
        blocked = [e for e in c.got("pipeline_error") if e["code"] == "loop_blocked"]
        assert blocked[0]["node"] == "sleepy" and blocked[0]["terminal"] is False, blocked
        await finish_canary(canary, hold, canary_id)
    named = [r for r in caplog.records if r.levelno >= logging.WARNING
             and "sleepy" in r.getMessage() and "block" in r.getMessage().lower()]
    assert named, "no warning names the node that blocked the event loop: " + "; ".join(
        r.getMessage()[:120] for r in caplog.records)


# --- signals --------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_while_streaming_tells_every_client_and_exits_zero(
    sig: signal.Signals,
) -> None:
    # a default-like ping interval: shutdown must not wait it out
    async with server_process(env={"PIPELINES_PING_INTERVAL": "25"}) as (proc, url):
        clients = []
        try:
            for _ in range(5):
                cm = connected(url)
                rec = await cm.__aenter__()
                clients.append((cm, rec))
                ack = await rec.call("process_msg", chain_spec(
                    LONG, {"coro": "Flow.delay", "args": {"seconds": 0.005},
                           "properties": {"concurrency": 8}}),
                    {"results": "batch", "window": 32})
                assert ack["ok"], ack
            for _, rec in clients:
                await rec.wait("results", 2)
            t0 = time.monotonic()
            proc.send_signal(sig)
            for _, rec in clients:
                done = await rec.wait_done(within=10)
                assert done["status"] == "cancelled", done
                assert done["error"] and done["error"]["code"] == "shutdown", done
                seqs = seqs_of(rec)
                assert seqs == list(range(len(seqs))) and seqs, "gap or reorder before shutdown"
                assert done["results"] == len(seqs), (done["results"], len(seqs))
            assert proc.stdout is not None
            output, _ = await asyncio.wait_for(proc.communicate(), 10)
            elapsed = time.monotonic() - t0
            assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
            assert elapsed < 10, elapsed
            assert b"Traceback" not in output, output.decode(errors="replace")[-3000:]
            for _, rec in clients:
                await wait_for(lambda r=rec: not r.client.connected, within=5)
        finally:
            for cm, _ in clients:
                await cm.__aexit__(None, None, None)


async def test_a_graph_that_cannot_move_ends_with_one_done() -> None:
    """A zip fed by a merge that carries extra items, with queues of 1: the run must end
    (completed, or failed with `stalled` naming the zip), never hang; others do not notice."""
    items = 200
    spec = {
        "nodes": {
            "a": {"coro": "Source.range", "args": {"stop": items}},
            "b": {"coro": "Source.range", "args": {"stop": items}},
            "c": {"coro": "Flow.identity", "properties": {
                "aggregate_inputs": False, "concurrency": 1, "ordered": False, "queue_size": 1}},
            "z": {"coro": "Number.sum", "properties": {"queue_size": 1}},
        },
        "graph": {"a": ["c", "z"], "b": ["c"], "c": ["z"], "z": None},
    }
    async with serve() as url:
        canary, hold, canary_id = await start_canary(url)
        c, done = await _run(url, spec, within=10)
        seqs = seqs_of(c)
        assert seqs == list(range(len(seqs)))
        if done["status"] == "completed":
            assert len(seqs) == items, done
        else:
            assert done["status"] == "failed" and done["error"]["code"] == "stalled", done
            assert "'z'" in done["error"]["message"], done
            terminal = [e for e in c.got("pipeline_error") if e["terminal"]]
            assert [e["code"] for e in terminal] == ["stalled"]
        await finish_canary(canary, hold, canary_id)
