"""A client that stops reading: the server's memory for it stays bounded, others run at speed.

The slow client submits a pipeline of 100 KB results (2,000 of them: 200 MB if the server
buffered them) and then never reads its socket again: no acks, no pongs. The server may send at
most its credit window; then the pipeline waits. Meanwhile a normal client streams 20,000
results, about as fast as it does alone. The slow client is dropped within ping interval + ping
timeout (it answers no ping), and its run and tasks are gone.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from serverutil import chain_spec, connected, serve, wait_for

from server.keys import SESSIONS, SIO

__all__: list[str] = []

ITEMS = 20_000
BIG = 100_000
WINDOW = 16
PING = 2.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def stream(url: str) -> float:
    """Run a 20,000-result pipeline to `done`; check the history; return its duration."""
    async with connected(url) as c:
        t0 = time.monotonic()
        ack = await c.call("process_msg", chain_spec(
            {"coro": "Source.range", "args": {"stop": ITEMS}},
            {"coro": "Number.add", "args": {"n": 1}}, {"coro": "Flow.identity"}),
            {"results": "batch", "metrics": False})
        assert ack["ok"] is True, ack
        done = await c.wait_done(within=60)
        took = time.monotonic() - t0
    assert done["status"] == "completed", done
    items = [i for e, d in c.order if e == "results" for i in d["items"]]
    assert [i["seq"] for i in items] == list(range(ITEMS))
    assert [i["value"] for i in items] == [v + 1 for v in range(ITEMS)]
    return took


async def test_client_that_stops_reading_is_bounded_and_isolated() -> None:
    async with serve(ping_interval=PING, ping_timeout=PING, stall_timeout=30,
                     max_result_bytes=2 * BIG) as url:
        app = serve.last_app  # type: ignore[attr-defined]
        manager, sio = app[SESSIONS], app[SIO]
        alone = await stream(url)

        before = rss_mb()
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
            assert (await ws.receive()).data.startswith("0")
            await ws.send_str("40")
            opened = (await ws.receive()).data
            sid = json.loads(opened[2:])["sid"]
            spec = chain_spec({"coro": "Source.range", "args": {"stop": 2000}},
                              {"coro": "Test.big", "args": {"size": BIG}})
            await ws.send_str("421" + json.dumps(
                ["process_msg", spec, {"results": "batch", "window": WINDOW, "metrics": False}]))
            await wait_for(lambda: manager.running() == 1, within=5)
            # From here on this client reads nothing.
            peak_queue = 0
            peak_rss = before

            async def watch() -> None:
                nonlocal peak_queue, peak_rss
                while True:
                    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
                    sock: Any = sio.eio.sockets.get(eio_sid) if eio_sid else None
                    if sock is not None:
                        peak_queue = max(peak_queue, sock.queue.qsize())
                    peak_rss = max(peak_rss, rss_mb())
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch())
            try:
                beside = await stream(url)
                # The slow client answers no ping: it is dropped, its run ends, nothing stays.
                t0 = time.monotonic()
                await wait_for(lambda: manager.get(sid) is None and manager.running() == 0,
                               within=2 * PING + 2)
                dropped_after = time.monotonic() - t0
            finally:
                watcher.cancel()
                await asyncio.wait({watcher})
            await ws.close()

    assert beside < 2 * alone + 1.0, f"others slowed down: {beside:.2f} s vs {alone:.2f} s alone"
    # At most the window's worth of 100 KB results (batches of <= WINDOW/2) waits for the client.
    assert peak_queue <= WINDOW + 8, f"engine.io queue for the slow client grew to {peak_queue}"
    assert peak_rss - before < 60, f"memory grew by {peak_rss - before:.0f} MB"
    assert dropped_after <= 2 * PING + 2
