"""Hostile client, smaller holes: numbers too large to print in item error reports and results,
user text in metric labels, an empty token, and Host headers of other names (DNS rebinding)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from typing import Any

import aiohttp
import pytest
from hostile_util import beside_canary, raw_run
from rawsio import RawSio
from serverutil import ROOT, chain_spec, serve

pytestmark = pytest.mark.asyncio


def squares(n: int, *then: dict[str, Any]) -> dict[str, Any]:
    """3 squared n times (3**(2**n)), then the `then` steps."""
    return chain_spec({"coro": "Source.items", "args": {"items": [3, 4]}},
                      *[{"coro": "Number.square"}] * n, *then)


async def test_numbers_too_large_to_print_are_reported_not_fatal() -> None:
    """With Python's int-to-text limit at its lowest (640 digits, as PYTHONINTMAXSTRDIGITS can
    set it), 3**2048 (978 digits) cannot be printed: an item that fails on it is still reported
    (its repr says what it is) and a result of it is skipped; the run completes."""
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        async with serve() as url, beside_canary(url):
            done, values, errors = await raw_run(url, squares(11, {"coro": "Text.upper"}))
            assert done["status"] == "completed", done
            assert values == [] and [e["code"] for e in errors] == ["node_error"] * 2, errors
            assert "<int of about" in errors[0]["item"] and "digits>" in errors[0]["item"]
            done, values, errors = await raw_run(url, squares(11))
            assert done["status"] == "completed" and values == [], done
            assert [e["code"] for e in errors] == ["unserializable_result"] * 2, errors
    finally:
        sys.set_int_max_str_digits(old)


async def test_metric_labels_carry_no_client_text() -> None:
    async with serve() as url:
        c = await RawSio.connect(url)
        try:
            for name in ('evil"} 1\nx{a="', "x" * 300, "Ünïcode"):
                await c.emit(name, ack_id=1)
                await c.wait_ack(1)
            await c.emit("process_msg", {"nodes": {}, "graph": {}}, ack_id=2)
            await c.wait_ack(2)
        finally:
            await c.close()
        async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    values = re.findall(r'="([^"]*)"', text)
    assert values, text[:500]
    assert all(re.fullmatch(r"[a-z_0-9.+-]*", v) for v in values), values
    assert "evil" not in text and "xxxx" not in text


@pytest.mark.parametrize("how", ["flag", "env"])
async def test_an_empty_token_refuses_to_start(how: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    args = [sys.executable, "server.py", "--host", "127.0.0.1", "--port", "0"]
    if how == "flag":
        args += ["--token", ""]
    else:
        env["PIPELINES_TOKEN"] = "  "
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    named = "--token" if how == "flag" else "PIPELINES_TOKEN"  # the setting as the user gave it
    assert len(lines) == 1 and named in lines[0] and "empty" in lines[0], lines


async def _status(url: str, host: str, path: str = "/healthz") -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{url}{path}", headers={"Host": host}) as r:
        return r.status, await r.text()


async def test_a_local_server_answers_only_local_host_names() -> None:
    async with serve() as url, beside_canary(url):  # bound to 127.0.0.1
        port = url.rsplit(":", 1)[1]
        for host in (f"127.0.0.1:{port}", "localhost", "LOCALHOST:1", "[::1]:8080"):
            assert (await _status(url, host))[0] == 200, host
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", ""):
            status, body = await _status(url, host)
            assert status == 421 and "allowed_hosts" in body, (host, status, body)
        status, _ = await _status(url, "rebound.example", "/socket.io/?EIO=4&transport=polling")
        assert status == 421
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await RawSio.open(url, headers={"Host": "rebound.example"})


async def test_allowed_hosts_is_configurable() -> None:
    async with serve(allowed_hosts=["api.example"]) as url:
        assert (await _status(url, "api.example:443"))[0] == 200
        assert (await _status(url, "127.0.0.1"))[0] == 421
    async with serve(host="0.0.0.0") as url:  # bound elsewhere: any name unless listed
        assert (await _status(url, "anything.example"))[0] == 200
    async with serve(allowed_hosts=["*"]) as url:
        assert (await _status(url, "anything.example"))[0] == 200
