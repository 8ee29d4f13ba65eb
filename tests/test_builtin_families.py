"""The built-in families added for everyday pipelines (Json, Csv, Regex, Hash, Batch, Rate, Net),
run through a real service (`POST /api/runs`), with their limits."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import aiohttp
from aiohttp import web
from serverutil import chain_spec, serve_app, serving
from test_server_docs import server_section

from server.coroutines import FetchConfig, build_registry


async def run(url: str, spec: dict[str, Any]) -> tuple[list[Any], list[dict[str, Any]], dict[str, Any]]:
    """POST the spec; (values, item errors, done)."""
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/runs", json=spec) as r:
        assert r.status == 200, await r.text()
        lines = [json.loads(line) for line in (await r.text()).splitlines()]
    values = [x["value"] for x in lines if "value" in x]
    errors = [x["error"] for x in lines if "error" in x]
    return values, errors, lines[-1]["done"]


def items(*values: Any) -> dict[str, Any]:
    return {"coro": "Source.items", "args": {"items": list(values)}}


async def test_json_and_csv() -> None:
    async with serving(http_run_burst=100) as (_, url):
        lines = ['{"a": {"b": [1, 2]}, "n": "x"}', '{"a": {"b": [3]}}', "NaN", '{"n": "y"}']
        values, errors, _ = await run(url, chain_spec(
            items(*lines), {"coro": "Json.parse"},
            {"coro": "Json.pick", "args": {"fields": ["a.b.0", "n"], "keep_missing": True}}))
        assert values == [{"a.b.0": 1, "n": "x"}, {"a.b.0": 3, "n": None},
                          {"a.b.0": None, "n": "y"}]
        assert errors[0]["error_type"] == "ValueError" and "NaN" in errors[0]["message"]
        values, _, done = await run(url, chain_spec(
            items({"a": 1}, {"b": 2}, {"a": [5]}), {"coro": "Json.pick", "args": {"field": "a"}},
            {"coro": "Json.dumps"}))
        assert values == ["1", "[5]"] and done["nodes"]["n1"]["dropped"] == 1
        values, errors, _ = await run(url, chain_spec(
            items("pen,1.5", '"ink, blue",4', "a,b,c"),
            {"coro": "Csv.parse", "args": {"header": ["name", "price"]}},
            {"coro": "Csv.format", "args": {"columns": ["price", "name"], "delimiter": ";"}}))
        assert values == ["1.5;pen", "4;ink, blue"]
        assert "3 fields" in errors[0]["message"]


async def test_regex_is_validated_bounded_and_never_blocks_the_server() -> None:
    async with serving(regex_timeout=0.3, regex_max_input=10_000, http_run_burst=100) as (_, url):
        values, _, _ = await run(url, chain_spec(
            items("order 17 shipped", "nothing", "order 4"),
            {"coro": "Regex.extract", "args": {"pattern": r"order (?P<id>\d+)", "group": "id"}}))
        assert values == ["17", "4"]
        values, _, _ = await run(url, chain_spec(
            items("a1b22", "x"), {"coro": "Regex.extract", "args": {"pattern": r"\d+", "all": True}}))
        assert values == [["1", "22"]]
        values, _, _ = await run(url, chain_spec(
            items("Cat", "dog"), {"coro": "Regex.match", "args": {"pattern": "^c", "ignore_case": True}},
            {"coro": "Regex.sub", "args": {"pattern": "(a)", "replacement": r"<\1>"}}))
        assert values == ["C<a>t"]
        async with aiohttp.ClientSession() as http:
            bad = chain_spec(items("x"), {"coro": "Regex.match", "args": {"pattern": "(unclosed"}})
            async with http.post(f"{url}/api/runs", json=bad) as r:
                assert r.status == 422
                issue = (await r.json())["error"]["errors"][0]
                assert issue["code"] == "invalid_value" and "regular expression" in issue["message"]
            # A catastrophic pattern fails its item after regex_timeout; meanwhile the event loop
            # serves other requests.
            evil = chain_spec(items("a" * 5000 + "!", "aa"),
                              {"coro": "Regex.match", "args": {"pattern": "(a|aa)+$"}})
            task = asyncio.ensure_future(run(url, evil))
            for _ in range(3):
                async with http.get(f"{url}/healthz") as r:
                    assert r.status == 200
            values, errors, done = await task
        assert values == ["aa"]
        assert errors[0]["error_type"] == "RegexTimeout" and done["nodes"]["n1"]["errors"] == 1
        _, errors, _ = await run(url, chain_spec(
            items("b" * 10_001), {"coro": "Regex.match", "args": {"pattern": "b"}}))
        assert "over the regex limit of 10000" in errors[0]["message"]


async def test_hash_batch_and_rate() -> None:
    async with serving(http_run_burst=100) as (_, url):
        values, _, _ = await run(url, chain_spec(
            items("abc", {"b": 1, "a": 2}), {"coro": "Hash.digest"}))
        assert values == [hashlib.sha256(b"abc").hexdigest(),
                          hashlib.sha256(b'{"a":2,"b":1}').hexdigest()]
        values, _, _ = await run(url, chain_spec(items("abc"), {"coro": "Hash.digest",
                                                                 "args": {"algorithm": "md5"}}))
        assert values == [hashlib.md5(b"abc").hexdigest()]
        group = chain_spec({"coro": "Source.range", "args": {"stop": 7}},
                           {"coro": "Batch.group", "args": {"n": 3}})
        values, _, done = await run(url, group)
        assert values == [[0, 1, 2], [3, 4, 5]] and done["nodes"]["n1"]["dropped"] == 5
        values, _, _ = await run(url, chain_spec({"coro": "Source.range", "args": {"stop": 4}},
                                                 {"coro": "Batch.window", "args": {"n": 2}}))
        assert values == [[0], [0, 1], [1, 2], [2, 3]]
        started = time.monotonic()
        values, _, _ = await run(url, chain_spec({"coro": "Source.range", "args": {"stop": 10}},
                                                 {"coro": "Rate.limit", "args": {"per_second": 20}}))
        assert values == list(range(10))
        assert time.monotonic() - started >= 9 / 20  # 10 items, 1/20 s apart: never faster


async def test_fetch_is_off_by_default_and_bounded_when_on() -> None:
    slow = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "data.json":
            return web.json_response({"ok": [1, 2]})
        if name == "big":
            return web.Response(text="x" * 5000)
        if name == "moved":
            raise web.HTTPFound("/data.json")
        if name == "slow":
            await slow.wait()
        return web.Response(text=f"hello {name}")

    api = web.Application()
    api.router.add_get("/{name}", handler)
    async with serve_app(api) as api_url:
        host_port = api_url.removeprefix("http://")
        fetch = {"coro": "Net.fetch"}
        async with serving() as (_, url), aiohttp.ClientSession() as http:
            async with http.post(f"{url}/api/runs", json=chain_spec(items(api_url), fetch)) as r:
                assert r.status == 422
                assert (await r.json())["error"]["errors"][0]["code"] == "unknown_coroutine"
        async with serving(fetch_hosts=[host_port], fetch_max_bytes=1000, fetch_timeout=2.0,
                           http_run_burst=100) as (_, url):
            values, errors, _ = await run(url, chain_spec(
                items(f"{api_url}/there", f"{api_url}/big", f"{api_url}/moved",
                      f"{api_url}/slow", "http://localhost:1/x", "file:///etc/passwd",
                      f"http://user:pw@{host_port}/x"), fetch))
            assert values == ["hello there"]
            messages = sorted((e["message"] for e in errors), key=lambda m: m.split("'")[3])
            assert len(messages) == 6, "\n".join(messages)
            assert "only http:// and https://" in messages[0]  # file:///etc/passwd
            assert "over the 1000 bytes limit" in messages[1]  # /big
            assert "HTTP 302" in messages[2]  # /moved: redirects are not followed
            assert "no complete answer within 2.0 s" in messages[3]  # /slow
            assert "'localhost' is not in the fetch_hosts allow-list" in messages[4]
            assert "credentials" in messages[5]
            values, _, _ = await run(url, chain_spec(
                items(f"{api_url}/data.json"), {"coro": "Net.fetch", "args": {"parse": "json"}}))
            assert values == [{"ok": [1, 2]}]
        slow.set()


def test_every_built_in_coroutine_is_documented() -> None:
    section = server_section()
    registry = build_registry(test_coroutines=True, fetch=FetchConfig(frozenset({"example.org"})))
    assert "Net.fetch" in registry
    for name in registry.names():
        assert f"| `{name}` |" in section, name
