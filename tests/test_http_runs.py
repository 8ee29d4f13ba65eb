"""`POST /api/runs`: NDJSON results, refusals before anything runs, TCP backpressure, a
disconnect cancels, the stall timeout, the budget, shutdown; the docs' curl commands run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from serverutil import chain_spec, serving, wait_for

from server.http_runs import RUNS, HttpRun
from server.keys import SESSIONS

ROOT = Path(__file__).resolve().parents[1]
SQUARES = chain_spec({"coro": "Source.range", "args": {"stop": 5}}, {"coro": "Number.square"})


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def items_source(values: list[Any]) -> dict[str, Any]:
    return {"coro": "Source.items", "args": {"items": values}}


def runs(app: web.Application) -> set[HttpRun]:
    return app[RUNS]


def ended(app: web.Application, status: str) -> float:
    """How many pipelines ended with `status` (the Prometheus counter)."""
    value = app[SESSIONS].stats.registry.get_sample_value(
        "pipelines_pipelines_total", {"status": status})
    return value or 0.0


@asynccontextmanager
async def raw_request(url: str, body: dict[str, Any]) -> AsyncIterator[
        tuple[asyncio.StreamReader, asyncio.StreamWriter, str]]:
    """POST /api/runs over a plain socket with a small receive buffer; yields after the headers
    (reader, writer, headers) so the test decides whether and how fast to read the body."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
    data = json.dumps(body).encode()
    writer.write(b"POST /api/runs HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: " + str(len(data)).encode()
                 + b"\r\n\r\n" + data)
    await writer.drain()
    headers = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
    try:
        yield reader, writer, headers
    finally:
        writer.close()


async def test_results_stream_as_ndjson_with_a_done_line() -> None:
    async with serving(max_args_bytes=1_000_000) as (app, url), aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/runs", json=SQUARES) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/x-ndjson"
            pipeline_id = r.headers["X-Pipeline-Id"]
            lines = lines_of(await r.text())
        assert lines[:-1] == [{"node": "n1", "seq": i, "value": i * i} for i in range(5)]
        done = lines[-1]["done"]
        assert done["pipeline_id"] == pipeline_id and done["status"] == "completed"
        assert done["results"] == 5 and done["error"] is None
        assert done["nodes"]["n1"] == {"in": 5, "out": 5, "errors": 0, "retries": 0, "dropped": 0,
                                       "unpaired": 0, "status": "done"}
        # With options, item errors as lines, a result too large skipped.
        spec = chain_spec({"coro": "Source.items", "args": {"items": [1, "x", 3]}},
                          {"coro": "Number.square"})
        async with http.post(f"{url}/api/runs",
                             json={"spec": spec, "options": {"timeout": 30}}) as r:
            lines = lines_of(await r.text())
        assert [x["value"] for x in lines if "value" in x] == [1, 9]
        errors = [x["error"] for x in lines if "error" in x]
        assert errors[0]["code"] == "node_error" and errors[0]["node"] == "n1"
        assert lines[-1]["done"]["nodes"]["n1"]["errors"] == 1
        # A body of many TCP segments, sent chunked (no Content-Length): read to its end.
        many = [f"item {i:06d}" for i in range(20_000)]
        body = json.dumps(chain_spec(items_source(many), {"coro": "Text.upper"})).encode()
        assert len(body) > 200_000

        async def chunked() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 10_000):
                yield body[start:start + 10_000]

        async with http.post(f"{url}/api/runs", data=chunked()) as r:
            assert r.status == 200, await r.text()
            lines = lines_of(await r.text())
        assert [x["value"] for x in lines[:-1]] == [m.upper() for m in many]
    async with serving(max_result_bytes=100) as (app, url), aiohttp.ClientSession() as http:
        big = chain_spec({"coro": "Source.items", "args": {"items": [1]}},
                         {"coro": "Test.big", "args": {"size": 500}})
        async with http.post(f"{url}/api/runs", json=big) as r:
            lines = lines_of(await r.text())
        assert lines[0]["error"]["code"] == "result_too_large"
        assert lines[-1]["done"]["skipped"] == 1 and lines[-1]["done"]["results"] == 0


async def test_refusals_come_before_anything_runs() -> None:
    async with serving(max_message_bytes=2048, http_run_burst=50) as (app, url), \
            aiohttp.ClientSession() as http:
        cases: list[tuple[Any, int, str]] = [
            ({"nodes": {"a": {"coro": "Nope"}}, "graph": {"a": None}}, 422, "invalid_spec"),
            ({"spec": SQUARES, "options": {"timeout": -1}}, 400, "invalid_payload"),
            ({"spec": SQUARES, "options": {"window": 3}}, 400, "invalid_payload"),
            ({"spec": SQUARES, "extra": 1}, 400, "invalid_payload"),
            ([1, 2], 400, "invalid_payload"),
        ]
        for body, status, code in cases:
            async with http.post(f"{url}/api/runs", json=body) as r:
                answer = await r.json()
                assert (r.status, answer["error"]["code"]) == (status, code), body
        async with http.post(f"{url}/api/runs", data=b'{"nodes": NaN}') as r:
            assert r.status == 400
        async with http.post(f"{url}/api/runs", data=b"x" * 4096) as r:
            assert r.status == 413
        invalid = (await (await http.post(f"{url}/api/runs", json=cases[0][0])).json())
        assert invalid["error"]["errors"][0]["code"] == "unknown_coroutine"
        assert ended(app, "completed") == ended(app, "failed") == 0
    async with serving(http_run_burst=2, http_runs_per_second=0.01) as (app, url), \
            aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.post(f"{url}/api/runs", json=SQUARES) as r:
                statuses.append(r.status)
                body = await r.text()
        assert statuses == [200, 200, 429]
        assert json.loads(body)["error"]["code"] == "rate_limited"


async def test_max_http_runs_and_disconnect_cancels() -> None:
    hang = chain_spec({"coro": "Source.range", "args": {"stop": 3}}, {"coro": "Test.hang"})
    async with serving(max_http_runs=1) as (app, url), aiohttp.ClientSession() as http:
        async with raw_request(url, hang) as (reader, writer, headers):
            assert headers.startswith("HTTP/1.1 200")
            await wait_for(lambda: len(runs(app)) == 1)
            async with http.post(f"{url}/api/runs", json=SQUARES) as r:
                assert r.status == 503 and (await r.json())["error"]["code"] == "busy"
            async with http.get(f"{url}/healthz") as r:
                assert (await r.json())["pipelines"] == 1
            async with http.get(f"{url}/metrics") as r:
                assert "pipelines_running 1.0" in await r.text()
            run = next(iter(runs(app)))
        # The client closed its connection while nothing was being written: the run stops.
        await wait_for(lambda: not runs(app), within=10)
        assert run.stop_reason == "disconnect" and run.plumber.done
        assert ended(app, "cancelled") == 1
        async with http.post(f"{url}/api/runs", json=SQUARES) as r:
            assert r.status == 200 and lines_of(await r.text())[-1]["done"]["results"] == 5


@pytest.mark.parametrize("client", ["stops_reading", "disconnects"])
async def test_a_client_that_stops_reading_stops_the_pipeline(client: str) -> None:
    total = 100_000
    spec = chain_spec({"coro": "Source.range", "args": {"stop": total}},
                      {"coro": "Test.big", "args": {"size": 1000}})
    stall = 2.0 if client == "stops_reading" else 60.0
    async with serving(stall_timeout=stall) as (app, url):
        async with raw_request(url, spec) as (reader, writer, headers):
            await reader.readexactly(10_000)  # some results, then no more reading
            await wait_for(lambda: len(runs(app)) == 1)
            run = next(iter(runs(app)))
            if client == "disconnects":
                writer.transport.abort()  # while the server is blocked writing
            # Blocked on the full TCP buffers, the run ends as stalled after stall_timeout,
            # or at once when the client goes away.
            await wait_for(lambda: not runs(app), within=30)
            produced = run.plumber.metrics()["nodes"]["src"]["out"]
            assert produced < total / 2, produced  # backpressure held the source back
            if client == "disconnects":
                assert run.stop_reason == "disconnect" and ended(app, "cancelled") == 1
            else:
                assert run.stop_reason == "client_stalled" and ended(app, "failed") == 1


async def test_budget_timeout_and_shutdown_end_with_a_done_line() -> None:
    hang = chain_spec({"coro": "Source.range", "args": {"stop": 3}}, {"coro": "Test.hang",
                                                                        "args": {"k": 1}})
    async with serving(pipeline_budget=1.5) as (app, url), aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/runs", json=hang) as r:
            lines = lines_of(await r.text())
        assert lines[0] == {"node": "n1", "seq": 0, "value": 0}
        assert lines[-1]["done"]["status"] == "failed"
        assert lines[-1]["done"]["error"]["code"] == "budget_exceeded"
        async with http.post(f"{url}/api/runs", json={"spec": hang, "options": {"timeout": 0.3}}) as r:
            done = lines_of(await r.text())[-1]["done"]
        assert (done["status"], done["error"]["code"]) == ("cancelled", "timeout")
    http = aiohttp.ClientSession()
    try:
        async with serving() as (app, url):
            response = await http.post(f"{url}/api/runs", json=hang)
            assert response.status == 200
            first = await asyncio.wait_for(response.content.readline(), 10)
            assert json.loads(first)["value"] == 0
        # The app shut down (as on SIGTERM): the run ended and said so.
        rest = lines_of((await asyncio.wait_for(response.content.read(), 10)).decode())
        assert rest[-1]["done"]["status"] == "cancelled"
        assert rest[-1]["done"]["error"]["code"] == "shutdown"
    finally:
        await http.close()


def doc_curls() -> list[str]:
    text = (ROOT / "docs/service.md").read_text()
    section = text.split("<!-- section:http-runs -->", 1)[1].split("<!-- /section:http-runs -->")[0]
    return [line for block in re.findall(r"```bash\n(.*?)```", section, re.S)
            for line in block.splitlines() if line]


async def test_documented_curl_commands_run_as_printed() -> None:
    curl = shutil.which("curl")
    if curl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is not installed")
        pytest.skip("curl is not installed")
    run_cmd, refused_cmd = doc_curls()
    async with serving() as (app, url):
        outputs = []
        for command in (run_cmd, refused_cmd):
            proc = await asyncio.create_subprocess_shell(
                command.replace("http://127.0.0.1:8080", url),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err.decode()
            outputs.append(out.decode())
    lines = lines_of(outputs[0])
    assert lines[:3] == [{"node": "sq", "seq": i, "value": i * i} for i in range(3)]
    assert lines[3]["done"]["status"] == "completed" and lines[3]["done"]["results"] == 3
    body, code = outputs[1].splitlines()
    assert code == "422"
    assert json.loads(body)["error"]["errors"][0]["code"] == "unknown_coroutine"


@pytest.mark.slow
async def test_the_benchmark_runs_and_checks_itself() -> None:
    """`bench/bench_http_runs.py --quick`: every line is checked by the benchmark itself."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "bench/bench_http_runs.py", "--quick", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 0, err.decode()
    rows = [line.split() for line in out.decode().splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("uvloop", "1"), ("uvloop", "4"),
                                            ("asyncio", "1"), ("asyncio", "4")]
    assert all(float(r[3].replace(",", "")) > 0 for r in rows)


async def test_token_and_browser_origin_are_checked() -> None:
    async with serving(token="s3cret", http_run_burst=50) as (_, url), \
            aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            async with http.post(f"{url}/api/runs", json=SQUARES, headers=headers) as r:
                assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
                assert (await r.json())["error"]["code"] == "unauthorized"
        good = {"Authorization": "Bearer s3cret"}
        async with http.post(f"{url}/api/runs", json=SQUARES, headers=good) as r:
            assert r.status == 200 and len(lines_of(await r.text())) == 6
        # A page of another site cannot make its visitors' browsers run pipelines; the
        # service's own page (same origin) and localhost pages can.
        for origin, status in (("https://evil.example", 403), (url, 200),
                               ("http://localhost:3000", 200)):
            async with http.post(f"{url}/api/runs", json=SQUARES,
                                 headers=good | {"Origin": origin}) as r:
                assert r.status == status, origin
                if status == 403:
                    assert (await r.json())["error"]["code"] == "forbidden_origin"
