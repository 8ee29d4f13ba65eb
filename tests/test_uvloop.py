"""The service runs on uvloop when it is installed (the default), on asyncio with --no-uvloop."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from serverutil import chain_spec, connected, server_process

try:
    import uvloop  # noqa: F401
    HAVE_UVLOOP = True
except ImportError:
    HAVE_UVLOOP = False


@pytest.mark.parametrize("flag, loop", [("--uvloop", "uvloop"), ("--no-uvloop", "asyncio")])
async def test_event_loop_choice(flag: str, loop: str) -> None:
    if loop == "uvloop" and not HAVE_UVLOOP:
        if os.environ.get("CI") == "true":
            pytest.fail("uvloop is not installed (it is in the test extra)")
        pytest.skip("uvloop is not installed")
    async with server_process(flag) as (proc, url):
        async with connected(url) as rec:
            spec = chain_spec({"coro": "Source.range", "args": {"stop": 50}}, {"coro": "Number.square"})
            assert (await rec.call("process_msg", spec))["ok"]
            assert (await rec.wait_done())["results"] == 50
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout is not None
        output = (await asyncio.wait_for(proc.stdout.read(), 20)).decode()
        assert await asyncio.wait_for(proc.wait(), 20) == 0, output
    assert f"event loop: {loop}" in output
