"""Hostile client, work amplified by fan-out: chained diamonds multiply each source item by 2**k,
so `max_source_items` bounds the source, not the work. The items processed by all nodes of a
pipeline are bounded (`max_pipeline_items`), and so are the items a graph can hold at once
(`max_inflight_items`); both are `limit_exceeded` errors naming the limit."""

from __future__ import annotations

from typing import Any

import pytest
from hostile_util import beside_canary, raw_run
from rawsio import RawSio
from serverutil import chain_spec, serve

pytestmark = pytest.mark.asyncio


def doubling_diamonds(k: int, items: int) -> dict[str, Any]:
    """src -> (l0, r0) -> m0 (merge) -> (l1, r1) -> m1 ...: each diamond doubles the items."""
    nodes: dict[str, Any] = {"src": {"coro": "Source.range", "args": {"stop": items}}}
    graph: dict[str, Any] = {}
    prev = "src"
    for i in range(k):
        left, right, merge = f"l{i}", f"r{i}", f"m{i}"
        nodes |= {left: {"coro": "Flow.identity"}, right: {"coro": "Flow.identity"},
                  merge: {"coro": "Flow.identity", "properties": {"aggregate_inputs": False}}}
        graph |= {prev: [left, right], left: [merge], right: [merge]}
        prev = merge
    graph[prev] = None
    return {"nodes": nodes, "graph": graph}


async def test_fan_out_work_is_bounded() -> None:
    # 100 source items through 20 doubling diamonds would be 100 * 2**20 items at the end
    async with serve(max_pipeline_items=30_000) as url, beside_canary(url):
        done, values, _ = await raw_run(url, doubling_diamonds(20, 100),
                                        {"results": "batch", "metrics": False})
        assert done["status"] == "failed", done
        assert done["error"]["code"] == "limit_exceeded", done
        assert "max_pipeline_items" in done["error"]["message"]
        processed = sum(n["in"] for n in done["nodes"].values() if n["in"])
        assert processed <= 30_000 + 64 * 1024, processed  # stopped within about one batch
        assert len(values) < 100 * 2**20


async def test_a_small_fan_out_still_completes() -> None:
    async with serve(max_pipeline_items=30_000) as url:
        done, values, _ = await raw_run(url, doubling_diamonds(3, 100),
                                        {"results": "batch", "metrics": False})
        assert done["status"] == "completed", done
        assert sorted(values) == sorted(list(range(100)) * 8)


async def test_a_graph_that_holds_too_many_items_is_refused() -> None:
    props = {"queue_size": 1024, "concurrency": 256}
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 3}},
                      *[{"coro": "Flow.identity", "properties": props}] * 60)
    async with serve() as url:
        c = await RawSio.connect(url)
        try:
            answer = await c.call("process_msg", spec, ack_id=1)
        finally:
            await c.close()
    assert answer["ok"] is False and answer["error"]["code"] == "invalid_spec", answer
    issues = answer["error"]["errors"]
    assert [i["code"] for i in issues] == ["limit_exceeded"], issues
    assert "max_inflight_items" in issues[0]["message"] and "92160" in issues[0]["message"]
