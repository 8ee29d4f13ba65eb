"""Hostile client, memory per session: results sent and not yet acknowledged have a byte budget
(half of `max_session_bytes`), not only a count, so a window of big results cannot hold
gigabytes; the values a running pipeline holds in its queues and result buffer count against the
whole budget, and a pipeline over it fails with `limit_exceeded`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hostile_util import beside_canary, raw_run
from rawsio import RawSio
from serverutil import chain_spec, serve

pytestmark = pytest.mark.asyncio

ITEM = 200_000  # bytes of each result
BUDGET = 8_000_000  # max_session_bytes: 4 MB of results may be unacknowledged


def big_results(items: int, queue_size: int = 1) -> dict[str, Any]:
    return chain_spec({"coro": "Source.range", "args": {"stop": items}},
                      {"coro": "Test.big", "args": {"size": ITEM},
                       "properties": {"queue_size": queue_size}})


async def _silent_run(url: str, spec: dict[str, Any], mode: str,
                      streaming: asyncio.Event) -> dict[str, Any]:
    """A client that asks for the largest window, reads but acknowledges nothing: `done`.
    `streaming` is set once its first result arrived."""
    c = await RawSio.connect(url)
    try:
        answer = await c.call("process_msg", spec,
                              {"results": mode, "window": 8192, "metrics": False}, ack_id=1)
        assert answer["ok"] is True, answer
        await c.wait_for(lambda p: p.type == 2 and p.data[0] in ("recv", "results"), 30)
        streaming.set()
        return (await c.wait_event("done", timeout=30))[0]  # type: ignore[no-any-return]
    finally:
        await c.close()


async def silent_beside_canary(url: str, spec: dict[str, Any], mode: str) -> dict[str, Any]:
    """The silent client's `done`; a canary is held while it starts streaming."""
    streaming = asyncio.Event()
    async with beside_canary(url):
        attack = asyncio.create_task(_silent_run(url, spec, mode, streaming))
        await asyncio.wait([attack, asyncio.create_task(streaming.wait())], timeout=30,
                           return_when=asyncio.FIRST_COMPLETED)
        assert streaming.is_set(), attack
    return await attack


@pytest.mark.parametrize("mode", ["batch", "recv"])
async def test_unacknowledged_results_are_bounded_in_bytes(mode: str) -> None:
    async with serve(max_session_bytes=BUDGET, stall_timeout=5) as url:
        done = await silent_beside_canary(url, big_results(30), mode)
        assert done["status"] == "failed" and done["error"]["code"] == "client_stalled", done
        # 4 MB of results may wait for acks (one result past it at most): not all 30 (6 MB)
        assert done["results"] * ITEM <= BUDGET // 2 + ITEM, done["results"]
        assert done["results"] >= 1


async def test_a_reading_client_gets_every_big_result() -> None:
    async with serve(max_session_bytes=BUDGET) as url:
        for mode in ("batch", "recv"):
            done, values, errors = await raw_run(
                url, big_results(30), {"results": mode, "window": 8192, "metrics": False})
            assert done["status"] == "completed" and errors == [], done
            assert len(values) == 30 and all(len(v) == ITEM for v in values)


async def test_a_pipeline_holding_too_many_bytes_fails() -> None:
    """Big values piling up in the queues (64 of 200 KB per edge) behind a silent client."""
    async with serve(max_session_bytes=BUDGET, stall_timeout=30) as url:
        done = await silent_beside_canary(url, big_results(500, queue_size=64), "batch")
        assert done["status"] == "failed", done
        assert done["error"]["code"] == "limit_exceeded", done
        assert "max_session_bytes" in done["error"]["message"]
