"""Pipeline lifecycles over real sockets: failures, cancel, disconnect, limits, isolation."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import pytest
from aiohttp import web
from rawsio import RawSio
from serverutil import (
    chain_spec,
    connected,
    demo_expected,
    demo_spec,
    serve,
    serving,
    wait_for,
)

from server.keys import SESSIONS

RANGE3 = {"coro": "Source.range", "args": {"stop": 3}}


def pipeline_tasks() -> set[asyncio.Task[Any]]:
    """Tasks that belong to a pipeline or a run (engine and server name theirs)."""
    return {t for t in asyncio.all_tasks()
            if t.get_name().startswith(("pipelines:", "pipelines-server:run:",
                                        "pipelines-server:side:"))}


async def assert_nothing_left(app: web.Application) -> None:
    """No session, no run, no pipeline task left (within a second of the end)."""
    manager = app[SESSIONS]
    await wait_for(lambda: len(manager) == 0 and not pipeline_tasks(), within=2)
    assert manager.running() == 0


async def test_node_that_raises_is_reported_and_skipped(server_url: str) -> None:
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 5}},
                      {"coro": "Test.fail_at", "args": {"k": 2}})
    async with connected(server_url) as c:
        await c.call("process_msg", spec)
        done = await c.wait_done()
    assert c.got("recv") == [0, 1, 3, 4]
    errors = c.got("pipeline_error")
    assert len(errors) == 1
    err = errors[0]
    assert err["code"] == "node_error" and err["terminal"] is False and err["node"] == "n1"
    assert "planned failure at item 2" in err["message"] and err["item"] == "(2,)"
    assert done["status"] == "completed" and done["nodes"]["n1"]["errors"] == 1


async def test_node_failing_with_on_error_fail_ends_pipeline(server_url: str) -> None:
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 1000}},
                      {"coro": "Test.fail_at", "args": {"k": 3},
                       "properties": {"on_error": "fail", "concurrency": 1}})
    async with connected(server_url) as c:
        await c.call("process_msg", spec)
        done = await c.wait_done()
    assert done["status"] == "failed"
    assert done["error"]["code"] == "node_failed" and done["error"]["node"] == "n1"
    terminal = [e for e in c.got("pipeline_error") if e["terminal"]]
    assert len(terminal) == 1 and terminal[0]["code"] == "node_failed"
    assert c.got("recv") == [0, 1, 2]
    # Order: the terminal error comes right before `done`.
    names = [e for e, _ in c.order if e not in ("metrics", "recv")]
    assert names[-2:] == ["pipeline_error", "done"]


async def test_hanging_node_times_out_per_item(server_url: str) -> None:
    spec = chain_spec(RANGE3, {"coro": "Test.hang", "args": {"k": 1},
                               "properties": {"timeout": 0.2}})
    async with connected(server_url) as c:
        await c.call("process_msg", spec)
        done = await c.wait_done(within=5)
    assert c.got("recv") == [0]
    assert done["status"] == "completed" and done["nodes"]["n1"]["errors"] == 2


async def test_error_events_are_rate_limited(server_url: str) -> None:
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 2000}},
                      {"coro": "Test.fail_when", "args": {"value": 0}},
                      # Attribute lookups are refused for every item: 1999 errors.
                      {"coro": "Text.format", "args": {"template": "{0.real}"}})
    async with connected(server_url) as c:
        await c.call("process_msg", spec)
        done = await c.wait_done()
    errors = c.got("pipeline_error")
    assert done["nodes"]["n2"]["errors"] == 1999
    assert done["nodes"]["n1"]["errors"] == 1
    assert 2 <= len(errors) <= 60  # a handful, plus one summary line
    assert "more item errors not shown" in errors[-1]["message"]


async def test_cancel_stops_everything(server_app: web.Application, server_url: str) -> None:
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 100_000}},
                      {"coro": "Flow.delay", "args": {"seconds": 0.01}})
    async with connected(server_url) as c:
        ack = await c.call("process_msg", spec)
        await c.wait("recv", 5)
        assert server_app[SESSIONS].running() == 1
        assert (await c.call("cancel"))["ok"] is True
        done = await c.wait_done(within=2)
        assert done["status"] == "cancelled" and done["pipeline_id"] == ack["pipeline_id"]
        assert not pipeline_tasks()
        assert server_app[SESSIONS].running() == 0
    await assert_nothing_left(server_app)


async def test_disconnect_tears_down(server_app: web.Application, server_url: str) -> None:
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 100_000}},
                      {"coro": "Test.hang", "args": {"k": 10}})
    async with connected(server_url) as c:
        await c.call("process_msg", spec)
        await c.wait("recv", 10)
        assert pipeline_tasks()
    await assert_nothing_left(server_app)


async def test_abrupt_disconnect_tears_down(server_app: web.Application, server_url: str) -> None:
    raw = await RawSio.connect(server_url)
    await raw.emit("process_msg", chain_spec(RANGE3, {"coro": "Test.hang"}))
    await raw.wait_event("pipeline_started")
    await raw.ws.close()  # websocket gone, no socket.io goodbye
    await raw.session.close()
    await assert_nothing_left(server_app)


async def test_stalled_client_fails_its_pipeline_only() -> None:
    async with serve(stall_timeout=0.5, default_window=8) as url:
        async with connected(url) as stalled, connected(url) as calm:
            stalled.hold = asyncio.Event()
            await stalled.call("process_msg", chain_spec(
                {"coro": "Source.range", "args": {"stop": 100_000}}, {"coro": "Flow.identity"}))
            calm_ack = await calm.call("process_msg", demo_spec(["ab"]) | {})
            assert calm_ack["ok"]
            done = await stalled.wait_done(within=5)
            calm_done = await calm.wait_done(within=10)
        assert done["status"] == "failed" and done["error"]["code"] == "client_stalled"
        # The window bounded what was sent: at most 8 results went out unacknowledged.
        assert len(stalled.got("recv")) <= 8
        assert [e["code"] for e in stalled.got("pipeline_error")] == ["client_stalled"]
        assert calm_done["status"] == "completed"
        assert sorted(calm.got("recv")) == demo_expected(["ab"])


async def test_window_backpressures_the_pipeline() -> None:
    """A slow-acking client: the source is held back (never 1000s of results ahead)."""
    async with serving(default_window=4) as (app, url), connected(url) as c:
        c.hold = asyncio.Event()
        await c.call("process_msg", chain_spec(
            {"coro": "Source.range", "args": {"stop": 100_000}}, {"coro": "Flow.identity"}))
        await c.wait("recv", 4)
        await asyncio.sleep(0.3)
        run = next(iter(app[SESSIONS].sessions.values())).run
        assert run is not None
        produced = run.plumber.metrics()["nodes"]["src"]["out"]
        assert len(c.got("recv")) == 4  # nothing past the window
        assert produced < 2000  # bounded queues: the source waits too
        await c.call("cancel")


async def test_budget_exceeded() -> None:
    async with serve(pipeline_budget=0.3) as url, connected(url) as c:
        await c.call("process_msg", chain_spec(RANGE3, {"coro": "Test.hang"}))
        done = await c.wait_done(within=3)
    assert done["status"] == "failed" and done["error"]["code"] == "budget_exceeded"
    assert done["elapsed"] < 1.5


async def test_result_too_large_and_unserializable(server_url: str) -> None:
    async with serve(max_result_bytes=1000) as url, connected(url) as c:
        await c.call("process_msg", chain_spec(RANGE3, {"coro": "Test.big", "args": {
            "size": 5000}}))
        done = await c.wait_done()
        assert c.got("recv") == []
        assert done["skipped"] == 3 and done["results"] == 0
        assert {e["code"] for e in c.got("pipeline_error")} == {"result_too_large"}
    async with connected(server_url) as c:
        await c.call("process_msg", chain_spec(RANGE3, {"coro": "Test.unserializable"}),
                     {"results": "batch"})
        done = await c.wait_done()
        assert c.got("results") == [] and done["skipped"] == 3
        assert {e["code"] for e in c.got("pipeline_error")} == {"unserializable_result"}


async def test_filter_drops_items(server_url: str) -> None:
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 10}},
                      {"coro": "Filter.compare", "args": {"op": "ge", "value": 7}})
    async with connected(server_url) as c:
        await c.call("process_msg", spec, {"results": "batch"})
        done = await c.wait_done()
    items = [i for b in c.got("results") for i in b["items"]]
    assert [(i["seq"], i["value"]) for i in items] == [(0, 7), (1, 8), (2, 9)]
    assert done["results"] == 3


async def test_concurrent_sessions_never_mix(server_app: web.Application, server_url: str
                                             ) -> None:
    n = 12

    async def one(i: int) -> tuple[list[str], list[Any], str]:
        items = [f"s{i}-{secrets.token_hex(3)}-{k}" for k in range(200)]
        spec = chain_spec({"coro": "Source.items", "args": {"items": items}},
                          {"coro": "Text.upper"})
        async with connected(server_url) as c:
            ack = await c.call("process_msg", spec, {"results": "batch" if i % 2 else "recv"})
            done = await c.wait_done(within=20)
            assert done["pipeline_id"] == ack["pipeline_id"]
            ids = {b["pipeline_id"] for b in c.got("results")} | {
                e["pipeline_id"] for e in c.got("metrics")}
            assert ids <= {ack["pipeline_id"]}
            return [s.upper() for s in items], c.results(), done["status"]

    outcomes = await asyncio.gather(*(one(i) for i in range(n)))
    for expected, got, status in outcomes:
        assert got == expected
        assert status == "completed"
    await assert_nothing_left(server_app)


async def test_sid_args_cannot_steer_output(server_url: str) -> None:
    """`sid`, `room`, `to` are not arguments of any coroutine: rejected, never used."""
    async with connected(server_url) as victim, connected(server_url) as attacker:
        spec = chain_spec(RANGE3, {"coro": "Flow.identity",
                                   "args": {"sid": victim.client.get_sid(), "room": "x"}})
        answer = await attacker.call("process_msg", spec)
        assert answer["ok"] is False and answer["error"]["code"] == "invalid_spec"
        assert {e["path"] for e in answer["error"]["errors"]} >= {"nodes.n1.args.sid"}
        await asyncio.sleep(0.1)
        assert victim.order == []


async def test_watchdog_names_the_node_that_blocks_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="server.watchdog")
    async with serve(loop_block_threshold=0.3) as url, connected(url) as c:
        ack = await c.call("process_msg", chain_spec(
            {"coro": "Source.range", "args": {"stop": 1}},
            {"coro": "Test.block", "args": {"seconds": 1.0}}))
        blocked = await c.wait("pipeline_error")
        done = await c.wait_done()
    err = blocked[0]
    assert err["code"] == "loop_blocked" and err["node"] == "n1" and err["terminal"] is False
    assert err["pipeline_id"] == ack["pipeline_id"]
    assert "Test.block" in err["message"]
    assert done["status"] == "completed" and c.got("recv") == [0]
    lines = [r.getMessage() for r in caplog.records]
    assert any("node 'n1' (Test.block)" in line for line in lines), lines
