"""SIGTERM / SIGINT on a real `python server.py`: clients are told, the process exits 0 fast."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from serverutil import chain_spec, connected, wait_for

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def server_process(*flags: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "server.py", "--host", "127.0.0.1", "--port", str(port),
        "--test-coroutines", "--log-level", "DEBUG", *flags,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 15
            while True:
                try:
                    async with http.get(f"{url}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert proc.returncode is None, "server exited early"
                assert time.monotonic() < deadline, "server did not come up"
                await asyncio.sleep(0.05)
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_tells_clients_and_exits_zero(sig: signal.Signals) -> None:
    async with server_process() as (proc, url):
        async with connected(url) as busy, connected(url) as idle:
            ack = await busy.call("process_msg", chain_spec(
                {"coro": "Source.range", "args": {"stop": 10}}, {"coro": "Test.hang"}))
            assert ack["ok"]
            await busy.wait("pipeline_started")
            start = time.monotonic()
            proc.send_signal(sig)
            done = await busy.wait_done(within=10)
            assert done["status"] == "cancelled"
            assert done["error"]["code"] == "shutdown"
            assert done["pipeline_id"] == ack["pipeline_id"]
            # Both sockets are disconnected by the server, the process exits 0.
            await wait_for(lambda: not (busy.client.connected or idle.client.connected), 10)
            assert proc.stdout is not None
            output, _ = await asyncio.wait_for(proc.communicate(), 10)
            elapsed = time.monotonic() - start
        assert proc.returncode == 0, output.decode(errors="replace")
        assert elapsed < 5, (elapsed, output.decode(errors="replace"))
        assert b"Traceback" not in output
