"""The engine's own limits against hostile data, in process: the item size cap (`max_item_bytes`),
the work budget (`max_pipeline_items`), the capacity check (`max_inflight_items`), the bytes a
pipeline holds, and safe reprs of values that cannot be printed."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from pipelines import DROP, LIBRARY_LIMITS, Plumber, RunStatus, SpecError, SpecLimits
from pipelines.processor import Processor
from pipelines.reprs import safe_repr
from pipelines.sizes import check_size, json_size, oversized

LIMITS = LIBRARY_LIMITS.model_copy(update={"max_item_bytes": 1000})


async def numbers(self: Processor, q: Any, values: list[Any]) -> None:
    for v in values:
        await q.put(v)


async def grow(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    return "x" * q_elt[0] if isinstance(q_elt[0], int) else DROP


async def guarded_grow(self: Processor, q_elt: tuple[Any, ...]) -> str:
    check_size(self, q_elt[0], "the text")
    return "x" * q_elt[0]


def _chain(*coros: Any, values: list[Any], **props: Any) -> dict[str, Any]:
    nodes: dict[str, Any] = {"src": {"coro": numbers, "args": {"values": values}}}
    graph: dict[str, Any] = {}
    prev = "src"
    for i, c in enumerate(coros):
        nodes[f"n{i}"] = {"coro": c, "properties": props}
        graph[prev] = [f"n{i}"]
        prev = f"n{i}"
    graph[prev] = None
    return {"nodes": nodes, "graph": graph}


@pytest.mark.parametrize("value", [
    0, -1, 10**50, 1.5, None, True, "", "abc", "é" * 100, [1, "a", None], {"k": [1, 2]},
    ["x" * 100] * 5, (1, 2), b"bytes",
])
def test_json_size_is_an_upper_bound_of_the_json(value: Any) -> None:
    text = json.dumps(value if not isinstance(value, bytes) else value.decode(),
                      ensure_ascii=False, separators=(",", ":"))
    assert json_size(value, 10**9) >= len(text.encode())
    assert json_size(value, 10**9) <= 2 * len(text.encode()) + 24


def test_json_size_of_shared_references_stops_at_the_limit() -> None:
    value: Any = "x" * 100
    for _ in range(60):  # 2**60 leaves as JSON, a few objects in memory
        value = [value, value]
    assert json_size(value, 10_000) > 10_000
    assert oversized([1, value, "ok"], 10_000) == [1]


def test_oversized_fast_paths_agree_with_the_slow_pass() -> None:
    limit = 1000
    batches: list[list[Any]] = [
        list(range(100)), [10**2000, 1], [1, -(10**2000)], ["a" * 10] * 30, ["a" * 999],
        ["é" * 300], ["é" * 600, "a"], [None] * 5, [None, "x" * 5000], [1.0, 2, True],
        [1, "x" * 3000], [[1] * 600], [{"k": "v" * 999}], [float("nan"), 10**3000],
    ]
    for batch in batches:
        expected = [i for i, v in enumerate(batch) if json_size(v, limit) > limit]
        assert oversized(batch, limit) == expected, batch


async def test_a_value_over_the_cap_is_an_item_error() -> None:
    errors: list[Any] = []
    plumber = Plumber(_chain(grow, values=[10, 5000, 20]), coro_map=lambda c: c,
                      limits=LIMITS, collect=True, on_item_error=errors.append)
    results = [r.value async for r in plumber.results()]
    report = await plumber.wait()
    assert report.status is RunStatus.COMPLETED
    assert results == ["x" * 10, "x" * 20]
    assert [e.code for e in errors] == ["item_too_large"]
    assert report.nodes["n0"].errors == 1


async def test_check_size_stops_a_coroutine_before_it_builds() -> None:
    errors: list[Any] = []
    plumber = Plumber(_chain(guarded_grow, values=[10, 10**12]), coro_map=lambda c: c,
                      limits=LIMITS, collect=True, on_item_error=errors.append)
    results = [r.value async for r in plumber.results()]
    assert results == ["x" * 10]  # 10**12 characters were never allocated
    assert [e.code for e in errors] == ["item_too_large"]
    assert "would be 1000000000000 bytes" in errors[0].message


async def test_on_error_fail_stops_the_run() -> None:
    spec = _chain(grow, values=[5000], on_error="fail")
    report = await Plumber(spec, coro_map=lambda c: c, limits=LIMITS).run()
    assert report.status is RunStatus.FAILED
    assert report.error is not None and "ItemTooLarge" in report.error.message


async def test_an_oversized_source_item_is_an_item_error() -> None:
    errors: list[Any] = []
    plumber = Plumber(_chain(_ident2, values=["x" * 5000, "y", 7]), coro_map=lambda c: c,
                      limits=LIMITS, collect=True, on_item_error=errors.append)
    results = [r.value async for r in plumber.results()]
    assert results == ["y", 7] and [e.code for e in errors] == ["item_too_large"]
    assert errors[0].node == "src"


async def _ident2(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    return q_elt[0]


def _diamonds(k: int, n: int) -> dict[str, Any]:
    nodes: dict[str, Any] = {"src": {"coro": numbers, "args": {"values": list(range(n))}}}
    graph: dict[str, Any] = {}
    prev = "src"
    for i in range(k):
        nodes |= {f"l{i}": {"coro": _ident2}, f"r{i}": {"coro": _ident2},
                  f"m{i}": {"coro": _ident2, "properties": {"aggregate_inputs": False}}}
        graph |= {prev: [f"l{i}", f"r{i}"], f"l{i}": [f"m{i}"], f"r{i}": [f"m{i}"]}
        prev = f"m{i}"
    graph[prev] = None
    return {"nodes": nodes, "graph": graph}


async def test_the_work_budget_fails_an_amplifying_pipeline() -> None:
    limits = LIBRARY_LIMITS.model_copy(update={"max_pipeline_items": 5000})
    report = await Plumber(_diamonds(16, 50), coro_map=lambda c: c, limits=limits).run()
    assert report.status is RunStatus.FAILED and report.error is not None
    assert report.error.code == "limit_exceeded" and "max_pipeline_items" in report.error.message
    assert sum(n.items_in for n in report.nodes.values() if n.name != "src") <= 5000 + 64 * 256
    small = await Plumber(_diamonds(2, 50), coro_map=lambda c: c, limits=limits).run()
    assert small.status is RunStatus.COMPLETED and small.results == 200


def test_inflight_capacity_is_checked_before_anything_runs() -> None:
    spec = _chain(_ident2, _ident2, values=[1], queue_size=1000, concurrency=100)
    with pytest.raises(SpecError) as ei:
        Plumber(spec, coro_map=lambda c: c, limits=SpecLimits(max_inflight_items=2000,
                                                              max_queue_size=None))
    (issue,) = ei.value.issues
    assert issue.code == "limit_exceeded" and "max_inflight_items" in issue.message
    assert "2712 items" in issue.message  # 2 x (1000 queue + 100 + 256 batch)
    Plumber(spec, coro_map=lambda c: c, limits=SpecLimits(max_inflight_items=2712,
                                                          max_queue_size=None))


async def test_held_bytes_counts_what_waits_in_the_queues() -> None:
    plumber = Plumber(_chain(_ident2, values=["x" * 1000] * 50), coro_map=lambda c: c,
                      collect=True, result_buffer=100)
    assert plumber.held_bytes(10**9) == 0
    report = await plumber.run()  # nobody reads: the results wait in the result buffer
    assert report.status is RunStatus.COMPLETED
    assert 50 * 1000 <= plumber.held_bytes(10**9) <= 50 * 1100
    assert plumber.held_bytes(5000) <= 5000 + 1100  # stops counting once over


def test_safe_repr_of_what_cannot_be_printed() -> None:
    huge = 10 ** (sys.get_int_max_str_digits() + 10)
    digits = sys.get_int_max_str_digits() + 11
    assert safe_repr((huge, "a")) == f"(<int of about {digits} digits>, 'a')"
    assert len(safe_repr("x" * 10**6)) <= 200
    with pytest.raises(ValueError):
        repr(huge)
