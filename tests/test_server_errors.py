"""Bad input over real sockets: each gets a clear error (ack + `pipeline_error`), nothing runs."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
import socketio
from rawsio import RawSio
from serverutil import chain_spec, connected, demo_spec, serve


async def submit_bad(url_or_client: Any, *args: Any) -> dict[str, Any]:
    """Submit, expect a negative ack AND a matching `pipeline_error`; return the error object."""
    c = url_or_client
    answer = await c.call("process_msg", *args)
    assert answer["ok"] is False, answer
    err = answer["error"]
    events = await c.wait("pipeline_error", 1 + len(c.got("pipeline_error")) - 1 or 1)
    assert events[-1]["code"] == err["code"] and events[-1]["terminal"] is False
    assert c.got("pipeline_started") == []
    return err


def one_node(coro: Any, **extra: Any) -> dict[str, Any]:
    return {"nodes": {"a": {"coro": coro, **extra}}, "graph": {"a": None}}


@pytest.mark.parametrize(
    "coro",
    ["os.system", "ProcessFunc.__init__", "__builtins__.eval", "asyncio.create_subprocess_exec",
     "sio.disconnect", "getattr", "../x", ""],
)
async def test_only_registry_coroutines(server_url: str, coro: str) -> None:
    async with connected(server_url) as c:
        err = await submit_bad(c, one_node(coro))
    assert err["code"] == "invalid_spec"
    codes = {e["code"] for e in err["errors"]}
    assert codes & {"unknown_coroutine", "invalid_value", "string_too_short"}, err
    assert err["errors"][0]["path"].startswith("nodes.a")


async def test_spec_errors_have_codes_and_paths(server_url: str) -> None:
    spec = demo_spec(["a"])
    spec["nodes"]["coro2"]["coro"] = "ProcessFunc.coro9"
    spec["nodes"]["inp"]["args"] = {"strings_from_client": "not a list"}
    spec["graph"]["coro3"] = ["nowhere"]
    async with connected(server_url) as c:
        err = await submit_bad(c, spec)
    assert err["code"] == "invalid_spec"
    by_code = {e["code"]: e for e in err["errors"]}
    assert "unknown_coroutine" in by_code and by_code["unknown_coroutine"]["path"].startswith(
        "nodes.coro2")
    assert "ProcessFunc.coro1" in by_code["unknown_coroutine"]["message"]  # names the known ones
    assert any(e["path"].startswith("nodes.inp.args.strings_from_client") for e in err["errors"])
    assert any("nowhere" in e["message"] for e in err["errors"])


async def test_cycle_is_named(server_url: str) -> None:
    spec = {
        "nodes": {"src": {"coro": "Source.range", "args": {"stop": 3}},
                  "a": {"coro": "Flow.identity"}, "b": {"coro": "Flow.identity"},
                  "out": {"coro": "Flow.identity"}},
        "graph": {"src": ["a"], "a": ["b"], "b": ["a", "out"], "out": None},
    }
    async with connected(server_url) as c:
        err = await submit_bad(c, spec)
    cycle = [e for e in err["errors"] if e["code"] == "cycle"]
    assert cycle and "a" in cycle[0]["message"] and "b" in cycle[0]["message"]


async def test_huge_graph_rejected_fast(server_url: str) -> None:
    n = 10_000
    spec = {"nodes": {f"n{i}": {"coro": "Flow.identity"} for i in range(n)},
            "graph": {f"n{i}": None for i in range(n)}}
    spec["nodes"]["n0"] = {"coro": "Source.range", "args": {"stop": 1}}
    async with connected(server_url) as c:
        loop = asyncio.get_running_loop()
        start = loop.time()
        err = await submit_bad(c, spec)
        assert loop.time() - start < 2
    assert any(e["code"] == "limit_exceeded" for e in err["errors"]), err
    # 65 nodes: just over the default limit of 64.
    spec65 = chain_spec({"coro": "Source.range", "args": {"stop": 1}},
                        *[{"coro": "Flow.identity"}] * 64)
    async with connected(server_url) as c:
        err = await submit_bad(c, spec65)
    assert any(e["code"] == "limit_exceeded" for e in err["errors"])


async def test_args_too_big(server_url: str) -> None:
    spec = chain_spec({"coro": "Source.items", "args": {"items": ["x" * 70_000]}},
                      {"coro": "Flow.identity"})
    async with connected(server_url) as c:
        err = await submit_bad(c, spec)
    assert any(e["code"] == "limit_exceeded" and e["path"].startswith("nodes.src.args")
               for e in err["errors"]), err


async def test_message_over_engineio_cap_closes_only_that_client(server_url: str) -> None:
    """1.5 MB message: engine.io drops that connection; others and the server are fine."""
    async with connected(server_url) as good:
        bad = await RawSio.connect(server_url)
        try:
            big = json.dumps(["process_msg", {"nodes": {"x": "y" * 1_500_000}}])
            await bad.send("2" + big)
            with pytest.raises(ConnectionResetError):
                await bad.next_packet(timeout=5)
        finally:
            await bad.close()
        ack = await good.call("validate", demo_spec(["a"]))
        assert ack["ok"] is True


@pytest.mark.parametrize(
    ("raw", "path_part"),
    [
        ('{"nodes": {"a": {"coro": "Source.range", "args": {"stop": NaN}}}, "graph": {}}',
         "nodes.a.args.stop"),
        ('{"nodes": {"a": {"coro": "Flow.delay", "args": {"seconds": Infinity}}}, "graph": {}}',
         "nodes.a.args.seconds"),
        ('{"nodes": {"a": {"coro": "Flow.delay", "args": {"seconds": 1e999}}}, "graph": {}}',
         "nodes.a.args.seconds"),
        ('{"nodes": {"a": {"coro": "Text.upper"}, "a": {"coro": "Text.lower"}}, "graph": {}}',
         "nodes"),
        ('{"nodes": {"a": {"coro": "\\ud800"}}, "graph": {}}', "nodes.a.coro"),
        ('{"nodes": ' + '{"a": ' * 40 + "1" + "}" * 40 + ', "graph": {}}', "nodes"),
    ],
    ids=["nan", "infinity", "1e999", "duplicate-key", "lone-surrogate", "deep-nesting"],
)
async def test_bad_json_values_rejected_before_validation(
    server_url: str, raw: str, path_part: str
) -> None:
    c = await RawSio.connect(server_url)
    try:
        await c.send(f'27["process_msg",{raw}]')
        answer = (await c.wait_ack(7))[0]
        err = (await c.wait_event("pipeline_error"))[0]
    finally:
        await c.close()
    assert answer["ok"] is False
    assert answer["error"]["code"] == "invalid_payload" == err["code"]
    assert answer["error"]["path"].startswith("spec." + path_part), answer


async def test_json_nested_300000_deep_answered(server_url: str) -> None:
    c = await RawSio.connect(server_url)
    try:
        await c.send('23["process_msg",' + "[" * 300_000 + "]" * 300_000 + "]")
        err = (await c.wait_event("pipeline_error"))[0]
        assert err["code"] == "invalid_payload"
        # The connection still works.
        assert (await c.call("registry", ack_id=9))["ok"] is True
    finally:
        await c.close()


async def test_binary_attachment_rejected(server_url: str) -> None:
    c = await RawSio.connect(server_url)
    try:
        await c.send('51-4["process_msg",{"_placeholder":true,"num":0}]')
        await c.send_bytes(b"\x00\x01")
        answer = (await c.wait_ack(4))[0]
    finally:
        await c.close()
    assert answer["error"]["code"] == "invalid_payload"
    assert "binary" in answer["error"]["message"]


@pytest.mark.parametrize("payload", [[], "x", 42, None])
async def test_spec_not_an_object(server_url: str, payload: Any) -> None:
    async with connected(server_url) as c:
        err = await submit_bad(c, payload)
    assert err["code"] in ("invalid_payload", "invalid_spec")


async def test_unknown_event_and_bad_arguments(server_url: str) -> None:
    async with connected(server_url) as c:
        answer = await c.call("rm_rf", {"x": 1})
        assert answer["ok"] is False and answer["error"]["code"] == "unknown_event"
        assert "process_msg" in answer["error"]["message"]
        answer = await c.call("process_msg", demo_spec(["a"]), {}, "extra")
        assert answer["error"]["code"] == "bad_arguments"
        answer = await c.call("process_msg")
        assert answer["error"]["code"] == "bad_arguments"
        answer = await c.call("process_msg", demo_spec(["a"]), {"window": "big"})
        assert answer["error"]["code"] == "invalid_payload"
        assert answer["error"]["path"] == "options.window"
        answer = await c.call("process_msg", demo_spec(["a"]), {"results": "all"})
        assert answer["error"]["path"] == "options.results"
        codes = [e["code"] for e in c.got("pipeline_error")]
        assert codes[0] == "unknown_event" and codes.count("bad_arguments") == 2
        assert c.got("pipeline_started") == []


async def test_busy_then_cancel(server_url: str) -> None:
    hang = chain_spec({"coro": "Source.range", "args": {"stop": 3}}, {"coro": "Test.hang"})
    async with connected(server_url) as c:
        first = await c.call("process_msg", hang)
        assert first["ok"]
        second = await c.call("process_msg", demo_spec(["a"]))
        assert second["ok"] is False and second["error"]["code"] == "busy"
        assert first["pipeline_id"] in second["error"]["message"]
        other = await c.call("cancel", {"pipeline_id": "not-mine"})
        assert other["error"]["code"] == "not_running"
        assert (await c.call("cancel", {"pipeline_id": first["pipeline_id"]}))["ok"] is True
        done = await c.wait_done(within=3)
        assert done["status"] == "cancelled" and done["error"] is None
        again = await c.call("cancel")
        assert again["error"]["code"] == "not_running"
        # The session is free again.
        third = await c.call("process_msg", chain_spec(
            {"coro": "Source.range", "args": {"stop": 2}}, {"coro": "Flow.identity"}))
        assert third["ok"] is True


async def test_submission_rate_limit() -> None:
    async with serve(submissions_per_second=1, submission_burst=2) as url, connected(url) as c:
        answers = [await c.call("validate", demo_spec(["a"])) for _ in range(4)]
        assert [a["ok"] for a in answers[:2]] == [True, True]
        assert answers[2]["error"]["code"] == answers[3]["error"]["code"] == "rate_limited"
        # Reported once per second, not once per event.
        assert [e["code"] for e in c.got("pipeline_error")] == ["rate_limited"]


async def test_event_flood_is_limited_and_others_unaffected(
    server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """10,000 events in a second from one raw client: rate limited, one log line a second."""
    caplog.set_level(logging.WARNING, logger="server")
    flood = await RawSio.connect(server_url)
    try:
        async with connected(server_url) as calm:
            frame = "2" + json.dumps(["registry"])
            for _ in range(10_000):
                await flood.send(frame)
            # The calm client does not notice (well within the flood's own handling time).
            reg = await calm.call("registry", within=10)
            assert reg["ok"] is True
            answer = await flood.call("registry", ack_id=1, timeout=30)
            assert answer is not None  # the flooder is answered (rate limited), not dropped
    finally:
        await flood.close()
    lines = [r for r in caplog.records if "rate_limited" in r.getMessage()]
    assert 1 <= len(lines) <= 5


async def test_token_required_when_configured() -> None:
    async with serve(token="s3cret") as url:
        with pytest.raises(socketio.exceptions.ConnectionError):
            async with connected(url):
                pass
        with pytest.raises(socketio.exceptions.ConnectionError):
            async with connected(url, auth={"token": "wrong"}):
                pass
        async with connected(url, auth={"token": "s3cret"}) as c:
            assert (await c.call("registry"))["ok"] is True


async def test_too_many_sessions_and_connections() -> None:
    async with serve(max_sessions=2, max_connections=3) as url:
        async with connected(url), connected(url):
            with pytest.raises(socketio.exceptions.ConnectionError):
                async with connected(url):
                    pass
        # Engine.IO connections that never join the namespace count too.
        raws = [await RawSio.open(url) for _ in range(3)]
        try:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await RawSio.open(url)
            assert refused.value.status == 401
        finally:
            for raw in raws:
                await raw.close()
        async with connected(url) as c:  # room again
            assert (await c.call("registry"))["ok"] is True


async def test_cross_origin_browser_refused(server_url: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        c = await RawSio.open(server_url, headers={"Origin": "https://evil.example"})
        await c.close()
    assert refused.value.status == 400
    ok = await RawSio.open(server_url, headers={"Origin": "http://localhost:3000"})
    await ok.close()
    host = server_url.removeprefix("http://")
    same = await RawSio.open(server_url, headers={"Origin": f"http://{host}"})
    await same.close()


@pytest.mark.parametrize(
    ("prop", "value"),
    [("queue_size", 0), ("queue_size", -1), ("queue_size", 10**9), ("queue_size", "16"),
     ("queue_size", 1.5), ("concurrency", 0), ("concurrency", -3), ("concurrency", 10**6)],
)
async def test_run_property_caps(server_url: str, prop: str, value: Any) -> None:
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 3}},
                      {"coro": "Flow.identity", "properties": {prop: value}})
    async with connected(server_url) as c:
        err = await submit_bad(c, spec)
    assert err["code"] == "invalid_spec"
    assert any(e["path"] == f"nodes.n1.properties.{prop}" for e in err["errors"]), err


async def test_items_per_source_limit_fails_the_run() -> None:
    async with serve(max_source_items=100) as url, connected(url) as c:
        ack = await c.call("process_msg", chain_spec(
            {"coro": "Source.range", "args": {"stop": 1000}}, {"coro": "Flow.identity"}),
            {"results": "batch"})
        assert ack["ok"]
        done = await c.wait_done()
    assert done["status"] == "failed"
    assert done["error"]["code"] == "limit_exceeded" and done["error"]["node"] == "src"
    assert done["results"] <= 100
