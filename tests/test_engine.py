"""The engine end to end: the original API and graphs, end of stream, concurrency, errors, cancel."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines import (
    DROP,
    NodeFailed,
    Plumber,
    Registry,
    RegistryError,
    RunStatus,
    SpecError,
    SpecLimits,
)
from pipelines.processor import InputProcessor, Processor

ROOT = Path(__file__).resolve().parents[1]


def ident(x: Any) -> Any:
    return x


async def src_list(self: Processor, output_q: asyncio.Queue[Any], items: list[Any]) -> None:
    for i in items:
        await output_q.put(i)


async def src_range(self: Processor, output_q: asyncio.Queue[Any], n: int = 10) -> None:
    for i in range(n):
        await output_q.put(i)


async def add1(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    return q_elt[0] + 1


async def collect_all(p: Plumber) -> list[Any]:
    return [r async for r in p.results()]


# -- the seed's examples -------------------------------------------------------------------------


async def test_seed_readme_example_prints_20_pairs_and_finishes(capsys: pytest.CaptureFixture[str]) -> None:
    class StringFuncs:
        @classmethod
        async def reverse(cls, self: Processor = None, q_elt: tuple = None):  # type: ignore[assignment]
            return q_elt[0][::-1]

        @classmethod
        async def input_coro(cls, self: Processor = None, output_q: asyncio.Queue = None):  # type: ignore[assignment,type-arg]
            import uuid

            acc = [str(uuid.uuid4()) for _ in range(20)]
            for i in acc:
                await output_q.put(i)
                await asyncio.sleep(0)

        @classmethod
        async def output_coro(cls, self, q_elt):  # type: ignore[no-untyped-def]
            print("output~> ", q_elt)

    input_d = {
        "nodes": {
            "inp": {"coro": StringFuncs.input_coro},
            "rev": {"coro": StringFuncs.reverse},
            "out": {"coro": StringFuncs.output_coro},
        },
        "graph": {"inp": ("rev", "out"), "rev": ("out",), "out": None},
    }
    _t = Plumber(input_d, coro_map=lambda x: x)
    _t.create_pipeline()
    report = await asyncio.wait_for(_t.wait(), 5)
    assert report.status is RunStatus.COMPLETED
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("output~>")]
    assert len(lines) == 20
    for ln in lines:
        a, b = eval(ln.split("output~>", 1)[1])  # the printed tuple
        assert b == a[::-1] and len(a) == 36
    assert report.nodes["out"].items_in == 20


def test_readme_demo_script_runs_and_exits() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "readme_demo.py")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("output~>") == 20
    assert "done: completed" in proc.stdout


async def test_original_test_graph_pairs_and_counts() -> None:
    """inp -> n1 -> (n2, n3); n2 -> (n3, n4); n3 -> n4; n4 not aggregating; 20 inputs."""
    seen_n3: list[tuple[Any, ...]] = []
    seen_n4: list[tuple[Any, ...]] = []

    async def inp(self: Processor, output_q: asyncio.Queue[str], n: int) -> None:
        import uuid

        for _ in range(n):
            await output_q.put(uuid.uuid4().hex)
            await asyncio.sleep(0)

    async def n1(self: Processor, q_elt: tuple[str]) -> str:
        await asyncio.sleep(0.001)
        return q_elt[0][::-1]

    async def n2(self: Processor, q_elt: tuple[str]) -> str:
        await asyncio.sleep(0.002)
        return q_elt[0].upper()

    async def n3(self: Processor, q_elt: tuple[str, str]) -> str:
        seen_n3.append(q_elt)
        return q_elt[0].lower()

    async def n4(self: Processor, q_elt: tuple[str]) -> str:
        seen_n4.append(q_elt)
        return q_elt[0]

    spec = {
        "nodes": {
            "inp": {"coro": inp, "args": {"n": 20}},
            "n1": {"coro": n1},
            "n2": {"coro": n2},
            "n3": {"coro": n3},
            "n4": {"coro": n4, "properties": {"aggregate_inputs": False}},
        },
        "graph": {"inp": ("n1",), "n1": ("n2", "n3"), "n2": ("n3", "n4"), "n3": ("n4",), "n4": None},
    }
    report = await asyncio.wait_for(Plumber(spec, coro_map=ident).run(), 10)
    assert report.status is RunStatus.COMPLETED
    assert len(seen_n3) == 20
    for a, b in seen_n3:
        assert b == a.upper()  # n2's output of the same n1 item: pairs match
    assert len(seen_n4) == 40
    assert all(len(e) == 1 for e in seen_n4)
    assert report.nodes["n4"].items_in == 40
    assert report.nodes["n3"].unpaired == 0


# -- key order, results, report --------------------------------------------------------------------


async def test_key_order_does_not_matter_and_results_iterate() -> None:
    spec = {
        "nodes": {"b": {"coro": add1}, "a": {"coro": src_range, "args": {"n": 100}}},
        "graph": {"b": None, "a": ["b"]},
    }
    p = Plumber(spec, coro_map=ident, collect=True)
    got = await asyncio.wait_for(collect_all(p), 5)
    assert [r.value for r in got] == list(range(1, 101))
    assert [r.seq for r in got] == list(range(100))
    assert {r.node for r in got} == {"b"}
    report = await p.wait()
    assert report.ok and report.results == 100
    d = report.to_dict()
    assert d["nodes"]["b"]["in"] == 100 and d["status"] == "completed"


async def test_results_before_start_required() -> None:
    p = Plumber({"nodes": {"a": {"coro": src_range}, "b": {"coro": add1}}, "graph": {"a": ["b"]}},
                coro_map=ident)
    with pytest.raises(RuntimeError, match="collect=True"):
        async for _ in p.result_batches():
            pass


# -- end of stream: merge and zip ------------------------------------------------------------------


async def test_merge_ends_when_all_inputs_end() -> None:
    spec = {
        "nodes": {
            "a": {"coro": src_list, "args": {"items": [1, 2, 3]}},
            "b": {"coro": src_list, "args": {"items": [10, 20]}},
            "m": {"coro": add1, "properties": {"aggregate_inputs": False}},
        },
        "graph": {"a": ["m"], "b": ["m"], "m": None},
    }
    p = Plumber(spec, coro_map=ident, collect=True)
    got = await asyncio.wait_for(collect_all(p), 5)
    assert sorted(r.value for r in got) == [2, 3, 4, 11, 21]


async def test_zip_with_unequal_inputs_ends_and_reports_unpaired() -> None:
    async def pair(self: Processor, q_elt: tuple[int, int]) -> tuple[int, int]:
        return q_elt

    spec = {
        "nodes": {
            "short": {"coro": src_range, "args": {"n": 3}},
            "long": {"coro": src_range, "args": {"n": 50}},
            "z": {"coro": pair},
        },
        "graph": {"short": ["z"], "long": ["z"], "z": None},
    }
    p = Plumber(spec, coro_map=ident, collect=True)
    got = await asyncio.wait_for(collect_all(p), 5)
    assert [r.value for r in got] == [(0, 0), (1, 1), (2, 2)]
    report = await p.wait()
    assert report.status is RunStatus.COMPLETED
    assert report.nodes["z"].unpaired == 47


# -- bounded queues and backpressure ---------------------------------------------------------------


async def test_slow_consumer_slows_the_source() -> None:
    produced = 0
    gate = asyncio.Event()
    ahead: list[int] = []

    async def src(self: Processor, output_q: asyncio.Queue[int]) -> None:
        nonlocal produced
        for i in range(1000):
            await output_q.put(i)
            produced += 1

    async def slow(self: Processor, q_elt: tuple[int]) -> int:
        ahead.append(produced - q_elt[0])
        if q_elt[0] == 0:
            await gate.wait()
        return q_elt[0]

    spec = {
        "nodes": {
            "src": {"coro": src},
            "slow": {"coro": slow, "properties": {"queue_size": 8, "concurrency": 2}},
        },
        "graph": {"src": ["slow"]},
    }
    p = Plumber(spec, coro_map=ident)
    p.start()
    # while item 0 is held, the source can only fill the queue and the reorder window (twice
    # the concurrency); its next put waits for room (and is not counted)
    for _ in range(50):
        await asyncio.sleep(0)
    assert produced == 8 + 2 * 2
    gate.set()
    report = await asyncio.wait_for(p.wait(), 5)
    assert report.ok and produced == 1000
    assert max(ahead) <= 8 + 2 * 2 + 1


async def test_unread_results_hold_the_pipeline_and_leaving_early_releases_it() -> None:
    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 10_000}}, "b": {"coro": add1}},
            "graph": {"a": ["b"]}}
    p = Plumber(spec, coro_map=ident, collect=True, result_buffer=16)
    seen = 0
    async for batch in p.result_batches():
        seen += len(batch)
        if seen >= 100:
            break
    m = p.metrics()
    assert m["nodes"]["a"]["out"] < 10_000  # it was held back while unread
    report = await asyncio.wait_for(p.wait(), 5)
    assert report.ok and report.nodes["b"].items_out == 10_000


# -- concurrency and order -------------------------------------------------------------------------


async def test_concurrency_cap_and_order_kept() -> None:
    running = 0
    peak = 0

    async def jitter(self: Processor, q_elt: tuple[int]) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * ((q_elt[0] * 7) % 5))
        running -= 1
        return q_elt[0]

    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 200}},
                      "j": {"coro": jitter, "properties": {"concurrency": 8}}},
            "graph": {"a": ["j"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 10)]
    assert got == list(range(200))
    assert peak == 8


async def test_unordered_results_leave_as_they_finish() -> None:
    async def wait_inverse(self: Processor, q_elt: tuple[int]) -> int:
        await asyncio.sleep(0.01 * (5 - q_elt[0]))
        return q_elt[0]

    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 5}},
                      "w": {"coro": wait_inverse, "properties": {"ordered": False}}},
            "graph": {"a": ["w"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 5)]
    assert sorted(got) == [0, 1, 2, 3, 4]
    assert got == [4, 3, 2, 1, 0]


async def test_io_bound_items_overlap_like_the_original() -> None:
    """The original demo's shape: every item of a sleeping node is in flight at once."""
    inflight_seen = 0

    async def io(self: Processor, q_elt: tuple[str]) -> str:
        nonlocal inflight_seen
        inflight_seen = max(inflight_seen, self.inflight)
        await asyncio.sleep(0.05)
        return q_elt[0]

    spec = {"nodes": {"a": {"coro": src_list, "args": {"items": list("abcde")}},
                      "io": {"coro": io}},
            "graph": {"a": ["io"]}}
    p = Plumber(spec, coro_map=ident)
    report = await asyncio.wait_for(p.run(), 5)
    assert report.ok
    assert inflight_seen == 4  # the 5th item saw the four before it in flight


# -- errors ----------------------------------------------------------------------------------------


async def boom_on_3(self: Processor, q_elt: tuple[int]) -> int:
    if q_elt[0] == 3:
        raise ValueError("three is bad")
    return q_elt[0]


async def test_on_error_skip_counts_and_reports() -> None:
    errors = []
    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 6}}, "b": {"coro": boom_on_3}},
            "graph": {"a": ["b"]}}
    p = Plumber(spec, coro_map=ident, collect=True, on_item_error=errors.append)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 5)]
    report = await p.wait()
    assert got == [0, 1, 2, 4, 5]
    assert report.status is RunStatus.COMPLETED
    assert report.nodes["b"].errors == 1
    (err,) = report.nodes["b"].first_errors
    assert err.node == "b" and err.item == "(3,)" and err.error_type == "ValueError"
    assert errors == [err]


async def test_on_error_retry_then_succeeds() -> None:
    tries: dict[int, int] = {}

    async def flaky(self: Processor, q_elt: tuple[int]) -> int:
        tries[q_elt[0]] = tries.get(q_elt[0], 0) + 1
        if tries[q_elt[0]] < 3:
            raise ConnectionError("try again")
        return q_elt[0]

    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 4}},
                      "f": {"coro": flaky,
                            "properties": {"on_error": "retry", "retries": 3, "backoff": 0.001}}},
            "graph": {"a": ["f"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 5)]
    report = await p.wait()
    assert got == [0, 1, 2, 3]
    assert report.nodes["f"].retries == 8 and report.nodes["f"].errors == 0


async def test_on_error_fail_stops_the_pipeline() -> None:
    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 1000}},
                      "b": {"coro": boom_on_3, "properties": {"on_error": "fail"}}},
            "graph": {"a": ["b"]}}
    before = asyncio.all_tasks()
    report = await asyncio.wait_for(Plumber(spec, coro_map=ident).run(), 5)
    assert report.status is RunStatus.FAILED
    assert isinstance(report.error, NodeFailed)
    assert report.error.node == "b" and "three is bad" in report.error.message
    assert asyncio.all_tasks() == before
    with pytest.raises(NodeFailed):
        report.raise_for_status()


async def test_item_timeout() -> None:
    async def maybe_hang(self: Processor, q_elt: tuple[int]) -> int:
        if q_elt[0] == 1:
            await asyncio.sleep(3600)
        return q_elt[0]

    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 3}},
                      "h": {"coro": maybe_hang, "properties": {"timeout": 0.05}}},
            "graph": {"a": ["h"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 5)]
    report = await p.wait()
    assert got == [0, 2]
    assert report.nodes["h"].first_errors[0].error_type == "ItemTimeout"


async def test_source_error_ends_stream_or_fails() -> None:
    async def bad_src(self: Processor, output_q: asyncio.Queue[int]) -> None:
        await output_q.put(1)
        raise OSError("disk gone")

    for on_error, status in (("skip", RunStatus.COMPLETED), ("fail", RunStatus.FAILED)):
        spec = {"nodes": {"s": {"coro": bad_src, "properties": {"on_error": on_error}},
                          "b": {"coro": add1}},
                "graph": {"s": ["b"]}}
        report = await asyncio.wait_for(Plumber(spec, coro_map=ident).run(), 5)
        assert report.status is status
        assert report.nodes["s"].errors == 1


async def test_drop_filters_items() -> None:
    async def evens(self: Processor, q_elt: tuple[int]) -> Any:
        return q_elt[0] if q_elt[0] % 2 == 0 else DROP

    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 10}}, "e": {"coro": evens}},
            "graph": {"a": ["e"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 5)]
    assert got == [0, 2, 4, 6, 8]
    assert (await p.wait()).nodes["e"].dropped == 5


async def test_source_item_limit() -> None:
    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 100}}, "b": {"coro": add1}},
            "graph": {"a": ["b"]}}
    report = await Plumber(spec, coro_map=ident, limits=SpecLimits(max_source_items=10)).run()
    assert report.status is RunStatus.FAILED
    assert report.error is not None and report.error.code == "limit_exceeded"


# -- cancellation ----------------------------------------------------------------------------------


async def test_cancel_mid_sleep_is_prompt_and_leaves_nothing() -> None:
    started = asyncio.Event()

    async def sleepy(self: Processor, q_elt: tuple[int]) -> int:
        started.set()
        await asyncio.sleep(3600)
        return 0

    async def endless(self: Processor, output_q: asyncio.Queue[int]) -> None:
        i = 0
        while True:
            await output_q.put(i)
            i += 1

    before = asyncio.all_tasks()
    spec = {"nodes": {"a": {"coro": endless}, "s": {"coro": sleepy}}, "graph": {"a": ["s"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    p.start()
    await asyncio.wait_for(started.wait(), 5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    report = await p.cancel()
    assert loop.time() - t0 < 0.1
    assert report.status is RunStatus.CANCELLED
    assert asyncio.all_tasks() == before
    assert p.metrics()["nodes"]["s"]["inflight"] == 0


async def test_cancelling_run_caller_cancels_pipeline() -> None:
    async def sleepy(self: Processor, q_elt: tuple[int]) -> int:
        await asyncio.sleep(3600)
        return 0

    before = asyncio.all_tasks()
    spec = {"nodes": {"a": {"coro": src_range}, "s": {"coro": sleepy}}, "graph": {"a": ["s"]}}
    p = Plumber(spec, coro_map=ident)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(p.run(), 0.05)
    assert p.status is RunStatus.CANCELLED
    assert asyncio.all_tasks() == before


async def test_async_with_cancels_on_exit() -> None:
    started = asyncio.Event()

    async def sleepy(self: Processor, q_elt: tuple[int]) -> int:
        started.set()
        await asyncio.sleep(3600)
        return 0

    spec = {"nodes": {"a": {"coro": src_range}, "s": {"coro": sleepy}}, "graph": {"a": ["s"]}}
    async with Plumber(spec, coro_map=ident) as p:
        await asyncio.wait_for(started.wait(), 5)
        assert p.status is RunStatus.RUNNING
    assert p.status is RunStatus.CANCELLED


# -- metrics ---------------------------------------------------------------------------------------


async def test_metrics_readable_while_running() -> None:
    gate = asyncio.Event()

    async def held(self: Processor, q_elt: tuple[int]) -> int:
        await gate.wait()
        return q_elt[0]

    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 20}},
                      "h": {"coro": held, "properties": {"concurrency": 4, "queue_size": 4}}},
            "graph": {"a": ["h"]}}
    p = Plumber(spec, coro_map=ident)
    p.start()
    for _ in range(20):
        await asyncio.sleep(0)
    m = p.metrics()
    h = m["nodes"]["h"]
    assert h["status"] == "running" and h["inflight"] == 4 and h["in"] == 4
    assert h["queue"] == 4
    assert m["edges"] == [{"from": "a", "to": "h", "depth": 4, "capacity": 4}]
    assert m["nodes"]["a"]["kind"] == "source"
    gate.set()
    report = await asyncio.wait_for(p.wait(), 5)
    assert report.nodes["h"].items_out == 20
    assert p.metrics()["nodes"]["h"]["status"] == "done"


# -- spec validation -------------------------------------------------------------------------------


def test_validation_reports_every_problem_with_paths() -> None:
    async def typed(self: Processor, q_elt: tuple[int], n: int = 1) -> int:
        return n

    spec = {
        "nodes": {
            "inp": {"coro": src_range, "args": {"n": "ten"}},
            "t": {"coro": typed, "args": {"n": 2, "bogus": 1}},
            "loop1": {"coro": add1},
            "loop2": {"coro": add1},
            "lonely": {"coro": add1},
            "p": {"coro": src_range},
        },
        "graph": {"inp": ["t", "ghost"], "t": None, "loop1": ["loop2"], "loop2": ["loop1"],
                  "p": None, "x": ["p"]},
    }
    with pytest.raises(SpecError) as ei:
        Plumber(spec, coro_map=ident)
    got = {(i.path, i.code) for i in ei.value.issues}
    assert ("graph.inp.1", "unknown_node") in got
    assert ("graph.x", "unknown_node") in got
    assert ("nodes.lonely", "unconnected_node") in got
    assert ("nodes.inp.args.n", "invalid_value") in got
    assert ("nodes.t.args.bogus", "unknown_field") in got
    cyc = [i for i in ei.value.issues if i.code == "cycle"]
    assert len(cyc) == 1 and "loop1 -> loop2 -> loop1" in cyc[0].message
    assert ei.value.to_dict()["code"] == "invalid_spec"


def test_self_loop_and_kind_mismatch() -> None:
    spec = {"nodes": {"a": {"coro": add1}, "b": {"coro": src_range}, "c": {"coro": add1}},
            "graph": {"a": ["b"], "c": ["c"]}}
    with pytest.raises(SpecError) as ei:
        Plumber(spec, coro_map=ident)
    issues = {(i.path, i.code): i.message for i in ei.value.issues}
    assert ("graph.c", "cycle") in issues and "self-loop" in issues[("graph.c", "cycle")]


def test_registry_kind_mismatch_and_unknown_names() -> None:
    reg = Registry()
    reg.register(src_range, name="Src.range", kind="source")
    reg.register(add1, name="Num.add1", kind="processor")
    reg.freeze()
    spec = {"nodes": {"a": {"coro": "Num.add1"}, "b": {"coro": "Src.range"},
                      "c": {"coro": "os.system"}, "d": {"coro": "Num.ad1"}},
            "graph": {"a": ["b"], "b": ["c"], "c": ["d"]}}
    with pytest.raises(SpecError) as ei:
        Plumber(spec, registry=reg)
    issues = {(i.path, i.code): i.message for i in ei.value.issues}
    assert ("nodes.a.coro", "kind_mismatch") in issues
    assert ("nodes.b.coro", "kind_mismatch") in issues
    assert "unknown coroutine 'os.system'" in issues[("nodes.c.coro", "unknown_coroutine")]
    assert "did you mean Num.add1" in issues[("nodes.d.coro", "unknown_coroutine")]


def test_limits_and_bad_properties() -> None:
    limits = SpecLimits(max_nodes=3)
    big = {"nodes": {f"n{i}": {"coro": "x"} for i in range(10)}, "graph": {}}
    with pytest.raises(SpecError) as ei:
        Plumber(big, coro_map=ident, limits=limits)
    assert ei.value.issues[0].code == "limit_exceeded"
    for bad in (0, -1, "16", 1.5, True):
        spec = {"nodes": {"a": {"coro": src_range},
                          "b": {"coro": add1, "properties": {"queue_size": bad}}},
                "graph": {"a": ["b"]}}
        with pytest.raises(SpecError) as ei:
            Plumber(spec, coro_map=ident)
        assert ei.value.issues[0].path == "nodes.b.properties.queue_size"
    spec = {"nodes": {"a": {"coro": src_range},
                      "b": {"coro": add1, "properties": {"concurrency": 10**6}}},
            "graph": {"a": ["b"]}}
    with pytest.raises(SpecError) as ei:
        Plumber(spec, coro_map=ident, limits=SpecLimits())
    assert ei.value.issues[0].code == "limit_exceeded"


def test_not_an_object_and_no_input() -> None:
    for raw in ([], "x", 42, None):
        with pytest.raises(SpecError) as ei:
            Plumber(raw, coro_map=ident)  # type: ignore[arg-type]
        assert ei.value.issues[0].path == "$"
    with pytest.raises(SpecError) as ei:
        Plumber({"nodes": {"a": {"coro": add1}}, "graph": {"a": ["a"]}}, coro_map=ident)
    assert {i.code for i in ei.value.issues} >= {"cycle", "no_input"}


async def test_deep_chain_has_no_recursion_limit() -> None:
    n = 1500
    nodes = {"s": {"coro": src_range, "args": {"n": 3}}}
    graph: dict[str, list[str] | None] = {"s": ["n0"]}
    for i in range(n):
        nodes[f"n{i}"] = {"coro": add1}
        graph[f"n{i}"] = [f"n{i + 1}"] if i + 1 < n else None
    p = Plumber({"nodes": nodes, "graph": graph}, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 20)]
    assert got == [n, n + 1, n + 2]


def test_json_schema_available() -> None:
    from pipelines import GraphSpec

    schema = GraphSpec.json_schema()
    assert set(schema["required"]) == {"nodes", "graph"}
    assert "NodeProperties" in schema["$defs"]


# -- registry ------------------------------------------------------------------------------------


def test_registry_checks_signatures_and_describes() -> None:
    reg = Registry()

    @reg.processor("Text.repeat", doc="Repeat the text n times.")
    async def repeat(self: Processor, q_elt: tuple[str], n: int = 2) -> str:
        return q_elt[0] * n

    with pytest.raises(RegistryError, match="not a coroutine"):
        reg.register(lambda self, q: q, name="Bad.sync", kind="processor")
    with pytest.raises(RegistryError, match="positional"):
        async def one(self: Processor) -> None: ...
        reg.register(one, name="Bad.one", kind="processor")
    with pytest.raises(RegistryError, match="dotted"):
        reg.register(repeat, name="__builtins__.eval ", kind="processor")
    with pytest.raises(RegistryError, match="already"):
        reg.register(repeat, name="Text.repeat", kind="processor")
    reg.freeze()
    with pytest.raises(RegistryError, match="frozen"):
        reg.register(repeat, name="Text.other", kind="processor")
    (entry,) = reg.describe()
    assert entry["name"] == "Text.repeat" and entry["kind"] == "processor"
    assert entry["doc"] == "Repeat the text n times."
    assert entry["args_schema"]["properties"]["n"]["type"] == "integer"


def test_registry_args_are_strict() -> None:
    reg = Registry()
    reg.register(src_range, name="S.range", kind="source")
    for bad in ("5", 1.5, float("nan"), None):
        with pytest.raises(SpecError) as ei:
            Plumber({"nodes": {"s": {"coro": "S.range", "args": {"n": bad}}}, "graph": {"s": None}},
                    registry=reg)
        assert ei.value.issues[0].path == "nodes.s.args.n"


# -- hygiene ---------------------------------------------------------------------------------------


def test_import_has_no_side_effects() -> None:
    code = (
        "import asyncio, logging, sys\n"
        "import pipelines, pipelines.plumber, pipelines.processor\n"
        "assert logging.getLogger().handlers == []\n"
        "assert not logging.getLogger('pipelines').handlers\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n" and proc.stderr == ""


def test_original_module_paths() -> None:
    assert issubclass(InputProcessor, Processor)
    from pipelines.plumber import Plumber as P2

    assert P2 is Plumber


# -- stalls, detached producers, failing after results ----------------------------------------------


async def test_a_stuck_zip_fails_with_a_named_stall_instead_of_hanging() -> None:
    async def evens(self: Processor, q_elt: tuple[int]) -> Any:
        return q_elt[0] if q_elt[0] % 2 == 0 else DROP

    async def pair(self: Processor, q_elt: tuple[int, int]) -> tuple[int, int]:
        return q_elt

    # z zips s with a filtered copy of s: its inputs drift apart until s cannot put any more
    spec = {"nodes": {"s": {"coro": src_range, "args": {"n": 100}}, "f": {"coro": evens},
                      "z": {"coro": pair, "properties": {"queue_size": 4}}},
            "graph": {"s": ["z", "f"], "f": ["z"], "z": None}}
    before = asyncio.all_tasks()
    report = await asyncio.wait_for(Plumber(spec, coro_map=ident).run(), 5)
    assert report.status is RunStatus.FAILED
    assert report.error is not None and report.error.code == "stalled"
    assert "'s' waits for room on s -> z (4/4)" in report.error.message
    assert "zip node (z)" in report.error.message
    assert asyncio.all_tasks() == before


async def test_fan_out_delivers_to_each_outlet_at_its_own_pace() -> None:
    """a feeds c (a merge that also carries b's items) and inp (a zip of a and c): delivering to
    one outlet after another would hold a's items back from inp while c's edge is full."""

    async def rng(self: Processor, output_q: asyncio.Queue[int], stop: int) -> None:
        for i in range(stop):
            await output_q.put(i)

    async def total(self: Processor, q_elt: tuple[int, ...]) -> int:
        return sum(q_elt)

    spec = {
        "nodes": {
            "a": {"coro": rng, "args": {"stop": 5}},
            "b": {"coro": rng, "args": {"stop": 4}},
            "c": {"coro": total, "properties": {"aggregate_inputs": False, "concurrency": 1,
                                                "ordered": False, "queue_size": 1}},
            "inp": {"coro": total, "properties": {"queue_size": 1}},
        },
        "graph": {"a": ["c", "inp"], "b": ["c"], "c": ["inp"], "inp": None},
    }
    p = Plumber(spec, coro_map=ident, collect=True)
    got = await asyncio.wait_for(collect_all(p), 5)
    report = await p.wait()
    assert report.status is RunStatus.COMPLETED, report.error
    assert len(got) == 5 and report.nodes["inp"].items_in == 5


async def test_endless_source_stops_when_its_only_consumer_ended() -> None:
    async def endless(self: Processor, output_q: asyncio.Queue[int]) -> None:
        i = 0
        while True:
            await output_q.put(i)
            i += 1

    async def pair(self: Processor, q_elt: tuple[int, int]) -> int:
        return q_elt[0] + q_elt[1]

    spec = {"nodes": {"tick": {"coro": endless}, "few": {"coro": src_range, "args": {"n": 3}},
                      "z": {"coro": pair}},
            "graph": {"tick": ["z"], "few": ["z"], "z": None}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 5)]
    report = await p.wait()
    assert got == [0, 2, 4]
    assert report.status is RunStatus.COMPLETED
    assert report.nodes["tick"].items_out < 1000 and report.nodes["tick"].status == "done"
    assert report.nodes["z"].unpaired == report.nodes["tick"].items_out - 3


async def test_failing_node_still_passes_on_what_came_before() -> None:
    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 10}},
                      "b": {"coro": boom_on_3, "properties": {"on_error": "fail"}}},
            "graph": {"a": ["b"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got: list[int] = []
    # results() hands out what came before, then raises the error that failed the run.
    with pytest.raises(NodeFailed, match="three is bad"):
        async with asyncio.timeout(5):
            async for r in p.results():
                got.append(r.value)
    report = await p.wait()
    assert report.status is RunStatus.FAILED and isinstance(report.error, NodeFailed)
    assert got == [0, 1, 2]


async def test_sixteen_way_fan_out_into_a_sixteen_way_zip() -> None:
    """RELIABILITY's L5 shape: every item broadcast to 16 branches and zipped back together."""

    async def total(self: Processor, q_elt: tuple[int, ...]) -> int:
        assert len(q_elt) == 16 and len(set(q_elt)) == 1  # the 16 copies of one item, paired
        return sum(q_elt)

    n = 2000
    nodes: dict[str, Any] = {"src": {"coro": src_range, "args": {"n": n}}, "z": {"coro": total}}
    graph: dict[str, Any] = {"src": [f"b{i}" for i in range(16)], "z": None}
    for i in range(16):
        nodes[f"b{i}"] = {"coro": add1, "properties": {"queue_size": 1 + i}}
        graph[f"b{i}"] = ["z"]
    p = Plumber({"nodes": nodes, "graph": graph}, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 20)]
    assert got == [16 * (i + 1) for i in range(n)]
    assert (await p.wait()).nodes["z"].unpaired == 0


async def test_an_item_raising_cancelled_error_is_an_item_error() -> None:
    async def odd(self: Processor, q_elt: tuple[int]) -> int:
        if q_elt[0] == 2:
            raise asyncio.CancelledError("not a real cancellation")
        return q_elt[0]

    spec = {"nodes": {"a": {"coro": src_range, "args": {"n": 5}}, "o": {"coro": odd}},
            "graph": {"a": ["o"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 5)]
    report = await p.wait()
    assert got == [0, 1, 3, 4]
    assert report.status is RunStatus.COMPLETED and report.nodes["o"].errors == 1


async def test_a_source_raising_cancelled_error_ends_its_stream_with_an_error() -> None:
    async def quits(self: Processor, output_q: asyncio.Queue[int]) -> None:
        await output_q.put(1)
        raise asyncio.CancelledError("gave up")

    spec = {"nodes": {"s": {"coro": quits}, "b": {"coro": add1}}, "graph": {"s": ["b"]}}
    p = Plumber(spec, coro_map=ident, collect=True)
    got = [r.value for r in await asyncio.wait_for(collect_all(p), 5)]
    report = await p.wait()
    assert got == [2]
    assert report.status is RunStatus.COMPLETED and report.nodes["s"].errors == 1
