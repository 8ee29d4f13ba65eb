"""Helpers of the reliability tests: a canary session that must not notice, and health checks."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from serverutil import Recorder, chain_spec

__all__ = ["CANARY_ITEMS", "canary_spec", "finish_canary", "healthz", "start_canary"]

CANARY_ITEMS = 300


def canary_spec(items: int = CANARY_ITEMS) -> dict[str, Any]:
    return chain_spec({"coro": "Source.range", "args": {"stop": items}},
                      {"coro": "Number.add", "args": {"n": 1}}, {"coro": "Flow.identity"})


async def start_canary(
    url: str, token: str | None = None
) -> tuple[Recorder, asyncio.Event, str]:
    """A session streaming CANARY_ITEMS results, held (no acks) after its first batch so that
    it is certainly mid-stream while the bad input is handled."""
    rec = Recorder()
    hold = asyncio.Event()
    rec.hold = hold
    await rec.client.connect(url, transports=["websocket"],
                             auth={"token": token} if token else None)
    spec = canary_spec()
    ack = await rec.call("process_msg", spec, {"results": "batch", "window": 8,
                                               "metrics": False})
    assert ack["ok"] is True, ack
    await rec.wait("results", 1)
    return rec, hold, ack["pipeline_id"]


async def finish_canary(rec: Recorder, hold: asyncio.Event, pipeline_id: str) -> None:
    hold.set()
    done = await rec.wait_done(within=20)
    assert done["status"] == "completed" and done["pipeline_id"] == pipeline_id, done
    items = [item for _, data in rec.order if _ == "results" for item in data["items"]]
    assert [i["seq"] for i in items] == list(range(CANARY_ITEMS)), "canary lost or reordered"
    assert [i["value"] for i in items] == [i + 1 for i in range(CANARY_ITEMS)]
    assert all(data["pipeline_id"] == pipeline_id for e, data in rec.order if e == "results")
    assert rec.got("pipeline_error") == [], rec.got("pipeline_error")
    assert len(rec.got("done")) == 1
    await rec.close()


async def healthz(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
    assert body["status"] == "ok", body
    return body


