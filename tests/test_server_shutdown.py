"""SIGTERM / SIGINT on a real `python server.py`: clients are told, the process exits 0 fast."""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import AbstractAsyncContextManager

import pytest
import serverutil
from serverutil import chain_spec, connected, wait_for


def server_process(
    *flags: str,
) -> AbstractAsyncContextManager[tuple[asyncio.subprocess.Process, str]]:
    """The shared subprocess helper, with the faulty Test.* coroutines and debug logs on."""
    return serverutil.server_process("--test-coroutines", "--log-level", "DEBUG", *flags)


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
