"""The service's protocol over real sockets: the legacy demo, batched results, the HTTP routes."""

from __future__ import annotations

import asyncio
import secrets
import time

import aiohttp
import pytest
import socketio
from serverutil import chain_spec, connected, demo_expected, demo_spec, serve


async def test_original_demo_client_unchanged(server_url: str) -> None:
    """The original client: emit process_msg (no ack), print every recv. 10 results in ~3 s."""
    strings = [secrets.token_hex(4) for _ in range(5)]
    received: list[str] = []
    ten = asyncio.Event()
    sio = socketio.AsyncClient(reconnection=False)

    @sio.on("recv")
    async def on_recv(data: str) -> None:
        received.append(data)
        if len(received) == 10:
            ten.set()

    await sio.connect(server_url)  # default transports: polling, then upgrade
    try:
        start = time.monotonic()
        await sio.emit("process_msg", demo_spec(strings))
        await asyncio.wait_for(ten.wait(), 8)
        elapsed = time.monotonic() - start
        # Nothing more arrives after the 10th (the pipeline is done by then).
        await asyncio.sleep(0.3)
    finally:
        await sio.disconnect()
    assert sorted(received) == demo_expected(strings)
    assert len(received) == 10
    # coro1 sleeps 3 s then coro3 1 s / coro2 2 s: the last result is at ~5 s, never before 3.
    assert 3.0 <= elapsed < 8.0


async def test_demo_events_in_order() -> None:
    """ack, pipeline_started, 10 recv, done: in that order, with matching ids and counts."""
    strings = ["ab", "cd", "ef", "gh", "ij"]
    async with serve(demo_sleep_scale=0.01) as url, connected(url) as c:
        ack = await c.call("process_msg", demo_spec(strings))
        assert ack["ok"] is True
        assert ack["outputs"] == ["out"]
        assert sorted(ack["edges"]) == sorted(
            [["inp", "coro1"], ["coro1", "coro2"], ["coro1", "coro3"], ["coro2", "out"],
             ["coro3", "out"]])
        done = await c.wait_done()
        names = [e for e, _ in c.order if e != "metrics"]
        assert names == ["pipeline_started"] + ["recv"] * 10 + ["done"]
        started = c.got("pipeline_started")[0]
        assert started["pipeline_id"] == ack["pipeline_id"] == done["pipeline_id"]
        assert done["status"] == "completed"
        assert done["results"] == 10 and done["error"] is None
        assert done["nodes"]["out"]["in"] == 10 and done["nodes"]["inp"]["out"] == 5
        assert sorted(c.got("recv")) == demo_expected(strings)


async def test_demo_delay_argument_overrides_sleep(server_url: str) -> None:
    """`delay` args make the demo fast even on a server with the real 3/2/1 s sleeps."""
    spec = demo_spec(["xy"])
    for name in ("coro1", "coro2", "coro3"):
        spec["nodes"][name]["args"] = {"delay": 0}
    async with connected(server_url) as c:
        start = time.monotonic()
        assert (await c.call("process_msg", spec))["ok"]
        done = await c.wait_done(within=2)
        assert time.monotonic() - start < 1.5
    assert done["results"] == 2
    assert sorted(c.got("recv")) == ["YX", "yx-xy"]


async def test_seed_readme_graph(server_url: str) -> None:
    """inp -> rev -> out and inp -> out; out zips: each result pairs a string and its reverse."""
    items = [secrets.token_hex(8) for _ in range(20)]
    spec = {
        "nodes": {
            "inp": {"coro": "Source.items", "args": {"items": items}},
            "rev": {"coro": "Text.reverse"},
            "out": {"coro": "Flow.collect"},
        },
        "graph": {"inp": ["rev", "out"], "rev": ["out"], "out": None},
    }
    async with connected(server_url) as c:
        assert (await c.call("process_msg", spec))["ok"]
        done = await c.wait_done()
    assert done["status"] == "completed"
    assert c.got("recv") == [[s, s[::-1]] for s in items]


@pytest.mark.parametrize("window", [1, 7, 256])
async def test_batched_results_complete_in_order(server_url: str, window: int) -> None:
    """Batch mode: `results` events, seq from 0 without gaps, values in order, any window."""
    n = 3000
    spec = chain_spec({"coro": "Source.range", "args": {"stop": n}},
                      {"coro": "Number.add", "args": {"n": 1}})
    async with connected(server_url) as c:
        ack = await c.call("process_msg", spec, {"results": "batch", "window": window})
        assert ack["ok"], ack
        done = await c.wait_done(within=30)
    batches = c.got("results")
    items = [item for b in batches for item in b["items"]]
    assert [i["seq"] for i in items] == list(range(n))
    assert [i["value"] for i in items] == list(range(1, n + 1))
    assert {i["node"] for i in items} == {"n1"}
    assert {b["pipeline_id"] for b in batches} == {ack["pipeline_id"]}
    # A batch never holds more than half the window (so two are in flight), nor the cap.
    assert max(len(b["items"]) for b in batches) <= max(1, min(128, window // 2))
    if window >= 256:
        assert len(batches) < n / 10  # really batched
    assert c.got("recv") == []
    assert done["results"] == n and done["status"] == "completed"


async def test_metrics_events_while_running(server_url: str) -> None:
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 8}},
                      {"coro": "Flow.delay", "args": {"seconds": 0.1},
                       "properties": {"concurrency": 1}})
    async with connected(server_url) as c:
        ack = await c.call("process_msg", spec, {"metrics_interval": 0.1})
        await c.wait_done()
    metrics = c.got("metrics")
    assert len(metrics) >= 3
    last = metrics[-1]
    assert last["pipeline_id"] == ack["pipeline_id"]
    assert set(last["nodes"]) == {"src", "n1"}
    node = last["nodes"]["n1"]
    for key in ("coro", "kind", "status", "in", "out", "errors", "inflight", "queue", "rate",
                "latency_ms"):
        assert key in node
    assert last["edges"] == [{"from": "src", "to": "n1", "depth": last["edges"][0]["depth"],
                              "capacity": 64}]
    # Metrics off: none at all.
    async with connected(server_url) as c:
        await c.call("process_msg", spec, {"metrics": False})
        await c.wait_done()
        assert c.got("metrics") == []


async def test_short_run_ends_with_final_metrics_matching_done(server_url: str) -> None:
    """Even a run shorter than one metrics interval shows its final counters before `done`."""
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 5}},
                      {"coro": "Number.add", "args": {"n": 1}})
    async with connected(server_url) as c:
        await c.call("process_msg", spec, {"metrics_interval": 5})
        done = await c.wait_done()
    events = [e for e, _ in c.order if e in ("metrics", "done")]
    assert events[-2:] == ["metrics", "done"]
    last = c.got("metrics")[-1]
    assert last["nodes"]["n1"]["out"] == done["nodes"]["n1"]["out"] == 5
    assert last["nodes"]["n1"]["status"] == "done" and last["results"] == 5


async def test_validate_and_registry_events(server_url: str) -> None:
    async with connected(server_url) as c:
        ok = await c.call("validate", demo_spec(["a"]))
        assert ok == {"ok": True, "outputs": ["out"]}
        bad = await c.call("validate", {"nodes": {}, "graph": {"x": ["y"]}})
        assert bad["ok"] is False and bad["error"]["code"] == "invalid_spec"
        reg = await c.call("registry")
        assert reg["ok"] is True
        names = {e["name"] for e in reg["coroutines"]}
        assert {"ProcessFunc.inputcoro", "ProcessFunc.coro1", "ProcessFunc.coro2",
                "ProcessFunc.coro3", "ProcessFunc.outputcoro", "Source.range", "Filter.compare",
                "Flow.delay", "Flow.identity"} <= names
        assert c.got("pipeline_started") == []  # validate runs nothing


async def test_http_routes(server_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server_url}/api/registry") as r:
            assert r.status == 200
            entries = (await r.json())["coroutines"]
        inputcoro = next(e for e in entries if e["name"] == "ProcessFunc.inputcoro")
        assert inputcoro["kind"] == "source"
        assert inputcoro["args_schema"]["properties"]["strings_from_client"]["type"] == "array"
        async with http.get(f"{server_url}/api/schema") as r:
            schema = await r.json()
            assert set(schema["properties"]) == {"nodes", "graph"}
        async with http.post(f"{server_url}/api/validate", json=demo_spec(["a"])) as r:
            assert r.status == 200 and (await r.json())["ok"] is True
        async with http.post(f"{server_url}/api/validate",
                             json={"nodes": {"a": {"coro": "os.system"}}, "graph": {"a": None}}
                             ) as r:
            body = await r.json()
            assert r.status == 422 and body["error"]["code"] == "invalid_spec"
            assert body["error"]["errors"][0]["code"] == "unknown_coroutine"
        async with http.post(f"{server_url}/api/validate", data=b'{"nodes": NaN}') as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_payload"
        async with http.get(f"{server_url}/healthz") as r:
            assert await r.json() == {"status": "ok", "sessions": 0, "pipelines": 0}
        async with http.get(f"{server_url}/") as r:
            assert r.status == 200 and "html" in r.headers["Content-Type"]


async def test_prometheus_metrics_count_sessions_pipelines_results(server_url: str) -> None:
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 5}}, {"coro": "Flow.identity"})
    async with aiohttp.ClientSession() as http:
        async with connected(server_url) as c:
            await c.call("process_msg", spec)
            await c.wait_done()
            await c.call("process_msg", {"nodes": []})  # an error
            async with http.get(f"{server_url}/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
    assert "pipelines_sessions 1.0" in text
    assert 'pipelines_pipelines_total{status="completed"} 1.0' in text
    assert "pipelines_results_total 5.0" in text
    assert 'pipelines_errors_total{code="invalid_spec"} 1.0' in text


async def test_http_validate_is_rate_limited_per_address() -> None:
    async with serve(http_validation_burst=3, http_validations_per_second=0.01) as url, \
            aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(5):
            async with http.post(f"{url}/api/validate", json=demo_spec(["a"])) as r:
                statuses.append(r.status)
                body = await r.json()
        assert statuses == [200, 200, 200, 429, 429]
        assert body["ok"] is False and body["error"]["code"] == "rate_limited"
        async with http.get(f"{url}/healthz") as r:
            assert r.status == 200
