"""The bad-input matrix (docs/promises.md), each case over a real socket beside a canary.

Every case sends one bad input (through the python-socketio client when it can, as raw
Engine.IO / Socket.IO frames over aiohttp's websocket when that client refuses) and asserts:

- the answer carries the expected error code (and, for spec errors, the expected issue code);
- `GET /healthz` still answers `ok`;
- a canary session running beside it, held mid-stream while the bad input is handled, then
  gets every one of its results, once, in order, and exactly one `done` (completed);
- every log line the server wrote meanwhile is one line, escaped and bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import socketio
from rawsio import RawSio
from reliability_util import finish_canary, healthz, start_canary
from serverutil import chain_spec, connected, serve

__all__: list[str] = []

TOKEN = "canary-token"

Send = Callable[[str], Awaitable[dict[str, Any]]]


# --- how a case sends its input -------------------------------------------------------------


def _error_of(answer: Any) -> dict[str, Any]:
    assert isinstance(answer, dict) and answer.get("ok") is False, answer
    err = answer["error"]
    assert isinstance(err, dict) and set(err) >= {"code", "message", "path", "node", "errors"}, err
    return err


def via_client(event: str, *args: Any) -> Send:
    """Emit with the python-socketio client and return the error object of the ack."""

    async def send(url: str) -> dict[str, Any]:
        async with connected(url) as c:
            err = _error_of(await c.call(event, *args))
            events = await c.wait("pipeline_error", 1)
            assert events[-1]["code"] == err["code"] and events[-1]["terminal"] is False
            assert c.got("pipeline_started") == []
        return err

    return send


def submit(spec: Any, *more: Any) -> Send:
    return via_client("process_msg", spec, *more)


def via_raw(socketio_text: str) -> Send:
    """Send one raw Socket.IO packet (ack id 1 expected in it) and return the error object."""

    async def send(url: str) -> dict[str, Any]:
        c = await RawSio.connect(url)
        try:
            await c.send(socketio_text)
            err = _error_of((await c.wait_ack(1, timeout=10))[0])
            event = (await c.wait_event("pipeline_error"))[0]
            assert event["code"] == err["code"]
            assert (await c.call("registry", ack_id=2))["ok"] is True  # still usable
        finally:
            await c.close()
        return err

    return send


def raw_spec(spec_text: str) -> Send:
    return via_raw('21["process_msg",' + spec_text + "]")


def node(coro: Any, **extra: Any) -> dict[str, Any]:
    return {"coro": coro, **extra}


def src(stop: int = 3) -> dict[str, Any]:
    return node("Source.range", args={"stop": stop})


def spec_of(nodes: dict[str, Any], graph: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": nodes, "graph": graph}


def with_args(coro: str, args: Any) -> dict[str, Any]:
    return chain_spec(src(), node(coro, args=args))


def with_props(**props: Any) -> dict[str, Any]:
    return chain_spec(src(), node("Flow.identity", properties=props))


def named(name: str) -> dict[str, Any]:
    return spec_of({"s": src(), name: node("Flow.identity")}, {"s": [name], name: None})


def many_nodes(n: int) -> dict[str, Any]:
    nodes = {"s": src()} | {f"n{i}": node("Flow.identity") for i in range(n - 1)}
    return spec_of(nodes, {"s": [f"n{i}" for i in range(n - 1)]} | {
        f"n{i}": None for i in range(n - 1)})


def chain_of(n: int) -> dict[str, Any]:
    return chain_spec(src(), *[node("Flow.identity") for _ in range(n - 1)])


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


# --- special senders ------------------------------------------------------------------------


async def oversized_message(url: str) -> dict[str, Any]:
    """1.5 MB: over Engine.IO's cap, the server drops that connection (nothing else)."""
    c = await RawSio.connect(url)
    try:
        await c.send("21" + json.dumps(["process_msg", {"nodes": {"x": "y" * 1_500_000}}]))
        with pytest.raises(ConnectionResetError):
            await c.next_packet(timeout=10)
    finally:
        await c.close()
    return {"code": "disconnected"}


async def binary_attachment(url: str) -> dict[str, Any]:
    c = await RawSio.connect(url)
    try:
        await c.send('51-1["process_msg",{"_placeholder":true,"num":0}]')
        await c.send_bytes(b"\x00\x01\x02")
        return _error_of((await c.wait_ack(1, timeout=10))[0])
    finally:
        await c.close()


async def second_submission(url: str) -> dict[str, Any]:
    async with connected(url) as c:
        first = await c.call("process_msg", chain_spec(src(), node("Test.hang")))
        assert first["ok"] is True, first
        err = _error_of(await c.call("process_msg", chain_spec(src(), node("Flow.identity"))))
        assert first["pipeline_id"] in err["message"]
        assert (await c.call("cancel"))["ok"] is True
        done = await c.wait_done(within=5)
        assert done["status"] == "cancelled"
    return err


async def cancel_nothing(url: str) -> dict[str, Any]:
    async with connected(url) as c:
        return _error_of(await c.call("cancel"))


async def cancel_the_canary(url: str, canary_id: str) -> dict[str, Any]:
    """Another session names the canary's pipeline id: refused, and the canary runs on."""
    async with connected(url) as c:
        return _error_of(await c.call("cancel", {"pipeline_id": canary_id}))


async def event_flood(url: str) -> dict[str, Any]:
    """10,000 events in a second from one client: rate limited; the client is still answered."""
    c = await RawSio.connect(url)
    try:
        frame = "2" + json.dumps(["registry"])
        t0 = time.monotonic()
        for _ in range(10_000):
            await c.send(frame)
        assert time.monotonic() - t0 < 5
        event = (await c.wait_event("pipeline_error", timeout=30))[0]
        # Let the flood drain, then the client is answered again (a fresh bucket).
        answer: Any = None
        async with asyncio.timeout(30):
            while not (isinstance(answer, dict) and answer.get("ok")):
                await asyncio.sleep(0.2)
                answer = await c.call("registry", ack_id=7, timeout=30)
        return dict(event)
    finally:
        await c.close()


async def no_token(url: str) -> dict[str, Any]:
    with pytest.raises(socketio.exceptions.ConnectionError):
        async with connected(url):
            pass
    with pytest.raises(ConnectionError) as refused:
        c = await RawSio.connect(url, auth={"token": "wrong"})
        await c.close()
    assert "unauthorized" in str(refused.value)
    return {"code": "unauthorized"}


async def cross_origin(url: str) -> dict[str, Any]:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        c = await RawSio.open(url, headers={"Origin": "https://evil.example"})
        await c.close()
    assert refused.value.status in (400, 403)
    return {"code": "origin_refused"}


async def unknown_namespace(url: str) -> dict[str, Any]:
    with pytest.raises(ConnectionError):
        c = await RawSio.connect(url, namespace="/admin")
        await c.close()
    return {"code": "namespace_refused"}


async def runtime_error(url: str, spec: dict[str, Any], terminal: bool) -> dict[str, Any]:
    """Submit a valid spec whose run goes wrong; return the first matching error event."""
    async with connected(url) as c:
        ack = await c.call("process_msg", spec, {"results": "batch"})
        assert ack["ok"] is True, ack
        done = await c.wait_done(within=15)
        errors = c.got("pipeline_error")
        assert errors, done
        assert done["status"] == ("failed" if terminal else "completed"), done
        assert any(e["terminal"] is terminal for e in errors), errors
        assert len(c.got("done")) == 1
        return dict(errors[0])


def too_many_items(url: str) -> Awaitable[dict[str, Any]]:
    return runtime_error(url, chain_spec(src(5000), node("Flow.identity")), terminal=True)


def oversized_item(url: str) -> Awaitable[dict[str, Any]]:
    return runtime_error(url, chain_spec(src(2), node("Test.big", args={"size": 2_000_000})),
                         terminal=False)


def unserializable(url: str) -> Awaitable[dict[str, Any]]:
    return runtime_error(url, chain_spec(src(2), node("Test.unserializable")), terminal=False)


# --- the matrix -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    send: Any  # Send, or a callable taking (url, canary_pipeline_id)
    code: str
    issues: frozenset[str] = frozenset()  # any of these issue codes (invalid_spec)
    server: dict[str, Any] = field(default_factory=dict)
    needs_canary_id: bool = False


def C(id: str, send: Any, code: str, *issues: str, **server: Any) -> Case:  # noqa: N802
    return Case(id, send, code, frozenset(issues), server)


GOOD = chain_spec(src(), node("Flow.identity"))
SPEC = "invalid_spec"
PAYLOAD = "invalid_payload"

CASES: list[Case] = [
    # the payload itself
    C("payload-list", submit([]), PAYLOAD),
    C("payload-string", submit("x"), PAYLOAD),
    C("payload-int", submit(42), PAYLOAD),
    C("payload-null", submit(None), PAYLOAD),
    C("nodes-missing", submit({"graph": {"a": None}}), SPEC, "missing"),
    C("graph-missing", submit({"nodes": {"a": src()}}), SPEC, "missing"),
    C("unknown-top-level-key", submit(GOOD | {"run_as": "root"}), SPEC, "unknown_field"),
    # coroutine names
    C("unknown-coroutine", submit(chain_spec(src(), node("Text.nope"))), SPEC,
      "unknown_coroutine"),
    *[C(f"injection-{i}", submit(chain_spec(src(), node(name))), SPEC, "unknown_coroutine",
        "invalid_value")
      for i, name in enumerate(["ProcessFunc.__init__", "__builtins__.eval", "os.system",
                                "asyncio.create_subprocess_exec", "sio.disconnect", "getattr",
                                "../x", ""])],
    *[C(f"coro-type-{type(v).__name__}", submit(chain_spec(src(), node(v))), SPEC,
        "invalid_value")
      for v in [42, ["Flow.identity"], {"name": "Flow.identity"}, None, True]],
    # args
    *[C(f"args-not-object-{type(v).__name__}", submit(with_args("Number.add", v)), SPEC,
        "invalid_value")
      for v in ["n=1", [1], 5]],
    *[C(f"args-internal-{k}", submit(with_args("Number.add", {k: 1})), SPEC, "unknown_field")
      for k in ["queue_size", "self", "env_vars", "sid", "__class__"]],
    *[C(f"args-steer-{k}", submit(with_args("Flow.identity", {k: "someone-else"})), SPEC,
        "unknown_field")
      for k in ["sid", "room", "to"]],
    C("args-wrong-type", submit(with_args("Number.add", {"n": "5"})), SPEC, "invalid_value"),
    C("args-nan", raw_spec('{"nodes":{"s":{"coro":"Source.range","args":{"stop":NaN}}},'
                           '"graph":{"s":null}}'), PAYLOAD),
    C("args-infinity", raw_spec('{"nodes":{"s":{"coro":"Source.range","args":{"stop":'
                                'Infinity}}},"graph":{"s":null}}'), PAYLOAD),
    C("args-1e999", raw_spec('{"nodes":{"s":{"coro":"Source.range","args":{"stop":1e999}}},'
                             '"graph":{"s":null}}'), PAYLOAD),
    C("args-900kb-string", submit(chain_spec(
        node("Source.items", args={"items": ["x" * 900_000]}), node("Flow.identity"))),
      SPEC, "limit_exceeded"),
    C("message-1.5mb", oversized_message, "disconnected"),
    C("args-nested-500", raw_spec(json.dumps(with_args("Flow.identity", nested(500)))),
      PAYLOAD),
    C("json-nested-300000", via_raw('21["process_msg",' + "[" * 300_000 + "]" * 300_000 + "]"),
      PAYLOAD),
    C("duplicate-node-keys", raw_spec(
        '{"nodes":{"s":{"coro":"Source.range","args":{"stop":3}},"a":{"coro":"Text.upper"},'
        '"a":{"coro":"Text.lower"}},"graph":{"s":["a"],"a":null}}'), PAYLOAD),
    C("lone-surrogate", raw_spec('{"nodes":{"s":{"coro":"Source.items","args":{"items":'
                                 '["\\ud800"]}}},"graph":{"s":null}}'), PAYLOAD),
    # the graph
    C("edge-to-unknown-node", submit(spec_of({"s": src()}, {"s": ["ghost"]})), SPEC,
      "unknown_node"),
    C("self-loop", submit(spec_of({"s": src(), "a": node("Flow.identity")},
                                  {"s": ["a"], "a": ["a"]})), SPEC, "cycle"),
    C("cycle", submit(spec_of({"s": src(), "a": node("Flow.identity"),
                               "b": node("Flow.identity")},
                              {"s": ["a"], "a": ["b"], "b": ["a"]})), SPEC, "cycle"),
    C("no-input-node", submit(spec_of({"a": node("Flow.identity"), "b": node("Flow.identity")},
                                      {"a": ["b"], "b": ["a"]})), SPEC, "no_input"),
    C("unreachable-node", submit(spec_of(
        {"s": src(), "o": node("Flow.identity"), "a": node("Flow.identity"),
         "b": node("Flow.identity")},
        {"s": ["o"], "o": None, "a": ["b"], "b": ["a"]})), SPEC, "unreachable", "cycle"),
    C("65-nodes", submit(many_nodes(65)), SPEC, "limit_exceeded"),
    C("10000-nodes", submit(many_nodes(10_000)), SPEC, "limit_exceeded"),
    C("fan-out-1000", submit(many_nodes(1001)), SPEC, "limit_exceeded"),
    C("chain-1000", submit(chain_of(1000)), SPEC, "limit_exceeded"),
    *[C(f"queue_size-{v!r}", submit(with_props(queue_size=v)), SPEC, "invalid_value",
        "limit_exceeded")
      for v in [0, -1, 10**9, "16", 1.5]],
    *[C(f"concurrency-{v!r}", submit(with_props(concurrency=v)), SPEC, "invalid_value",
        "limit_exceeded")
      for v in [0, -3, 10**6]],
    *[C(f"node-name-{label}", submit(named(name)), SPEC, "invalid_value")
      for label, name in [("newline", "a\nINFO forged log line"), ("escape", "\x1b[31mred"),
                          ("nul", "a\x00b"), ("10kb", "n" * 10_000)]],
    # events
    C("unknown-event", via_client("rm_rf", {"path": "/"}), "unknown_event"),
    C("too-many-arguments", via_client("process_msg", GOOD, {}, "extra"), "bad_arguments"),
    C("too-few-arguments", via_client("process_msg"), "bad_arguments"),
    C("second-process-msg", second_submission, "busy"),
    C("cancel-nothing", cancel_nothing, "not_running"),
    Case("cancel-another-session", cancel_the_canary, "not_running", needs_canary_id=True),
    C("binary-attachment", binary_attachment, PAYLOAD),
    C("event-flood", event_flood, "rate_limited"),
    # connections
    C("no-token", no_token, "unauthorized", token=TOKEN),
    C("cross-origin", cross_origin, "origin_refused"),
    C("unknown-namespace", unknown_namespace, "namespace_refused"),
    # runs that go wrong
    C("too-many-items", too_many_items, "limit_exceeded", max_source_items=1000),
    C("oversized-item", oversized_item, "item_too_large"),
    C("oversized-result", oversized_item, "result_too_large", max_item_bytes=3_000_000),
    C("unserializable-result", unserializable, "unserializable_result"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_answered_and_isolated(
    case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = case.server.get("token")
    async with serve(**case.server) as url:
        canary, hold, canary_id = await start_canary(url, token)
        try:
            t0 = time.monotonic()
            if case.needs_canary_id:
                err = await case.send(url, canary_id)
            else:
                err = await case.send(url)
            took = time.monotonic() - t0
            assert err["code"] == case.code, err
            if case.issues:
                found = {e["code"] for e in err["errors"]}
                assert found & case.issues, err
                assert all(e["path"] and e["message"] for e in err["errors"]), err
            if case.id in ("65-nodes", "10000-nodes", "fan-out-1000", "chain-1000"):
                assert took < 2.0, f"a too-big spec took {took:.2f} s to refuse"
            if case.id == "cycle":
                cyc = [e for e in err["errors"] if e["code"] == "cycle"]
                assert "a" in cyc[0]["message"] and "b" in cyc[0]["message"], cyc
            body = await healthz(url)
            assert body["pipelines"] >= 1  # the canary is still running
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            if canary.client.connected:
                await canary.client.disconnect()
        await healthz(url)
    for record in caplog.records:
        text = record.getMessage()
        assert "\n" not in text and "\x1b" not in text and "\x00" not in text, text[:300]
        assert len(text) <= 2000, f"log line of {len(text)} characters: {text[:200]}"


async def test_chain_1000_deep_validates_without_recursion_error() -> None:
    """With the node cap raised, a 1,000-deep chain is checked (no RecursionError) and runs."""
    async with serve(max_nodes=2000, max_edges=2000, max_inflight_items=400_000) as url, \
            connected(url) as c:
        ack = await c.call("process_msg", chain_of(1000), {"results": "batch"})
        assert ack["ok"] is True, ack
        done = await c.wait_done(within=60)
        assert done["status"] == "completed", done
        assert [i["value"] for _, d in c.order if _ == "results" for i in d["items"]] == [0, 1, 2]
