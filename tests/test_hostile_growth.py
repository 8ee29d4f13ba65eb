"""Hostile client, item growth: built-in coroutines that can turn a few bytes into hundreds of
MB per item are stopped before they build it; any value over `max_item_bytes` that a node would
pass on is an item error `item_too_large`, handled by the node's `on_error`."""

from __future__ import annotations

import resource
from typing import Any

import pytest
from hostile_util import beside_canary, raw_run
from serverutil import chain_spec, serve

pytestmark = pytest.mark.asyncio


def items(*values: Any) -> dict[str, Any]:
    return {"coro": "Source.items", "args": {"items": list(values)}}


def step(coro: str, **args: Any) -> dict[str, Any]:
    return {"coro": coro, "args": args} if args else {"coro": coro}


def diamonds(k: int, value: Any) -> dict[str, Any]:
    """src -> (l1, r1) -> c1 (Flow.collect of the pair) -> (l2, r2) -> c2 ...: the JSON size of
    an item doubles at each of the k diamonds (the list holds the same value twice)."""
    nodes: dict[str, Any] = {"src": items(value)}
    graph: dict[str, Any] = {}
    prev = "src"
    for i in range(k):
        left, right, join = f"l{i}", f"r{i}", f"c{i}"
        nodes |= {left: step("Flow.identity"), right: step("Flow.identity"),
                  join: step("Flow.collect")}
        graph |= {prev: [left, right], left: [join], right: [join]}
        prev = join
    graph[prev] = None
    return {"nodes": nodes, "graph": graph}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CASES = {
    # 1,000 chars, each replaced by 1,024: 1 MB, then 1 GB at the next step
    "replace": chain_spec(items("x" * 1000, "ok"), step("Text.replace", old="x", new="y" * 1024),
                          step("Text.replace", old="y", new="z" * 1024)),
    "format_width": chain_spec(items("a", "b"), step("Text.format", template="{0:>999999999}")),
    "collect_diamonds": diamonds(14, "x" * 200),
    "multiply_chain": chain_spec(items(7), *[step("Number.multiply", factor=10**99)] * 50),
    "square_chain": chain_spec(items(3), *[step("Number.square")] * 20),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_growth_is_stopped_before_it_is_built(case: str) -> None:
    before = peak_rss_mb()
    async with serve() as url, beside_canary(url):
        done, values, errors = await raw_run(url, CASES[case])
        assert done["status"] == "completed", done
        codes = {e["code"] for e in errors}
        assert codes == {"item_too_large"}, errors
        assert all(e["terminal"] is False and e["node"] for e in errors)
        if case == "replace":
            assert values == ["ok"]  # the small item passes through
        elif case == "format_width":
            assert values == []
    grown = peak_rss_mb() - before
    assert grown < 150, f"peak RSS grew by {grown:.0f} MB"


async def test_any_node_output_is_capped() -> None:
    """Flow.timestamp has no check of its own: the node's cap catches its too-large value."""
    async with serve(max_item_bytes=1000) as url, beside_canary(url):
        spec = chain_spec(items("s" * 990, "short"), step("Flow.timestamp"))
        done, values, errors = await raw_run(url, spec)
        assert done["status"] == "completed", done
        assert [v[0] for v in values] == ["short"]
        assert [e["code"] for e in errors] == ["item_too_large"], errors
        assert "over the limit of 1000 bytes" in errors[0]["message"]


async def test_on_error_fail_ends_the_run() -> None:
    async with serve() as url:
        spec = chain_spec(items("x" * 1000), {"coro": "Text.replace",
                                              "args": {"old": "x", "new": "y" * 1024},
                                              "properties": {"on_error": "fail"}})
        done, values, _ = await raw_run(url, spec)
        assert done["status"] == "failed" and values == [], done
        assert "item_too_large" in done["error"]["message"] or \
            "ItemTooLarge" in done["error"]["message"], done
