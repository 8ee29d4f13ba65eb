"""Operator announcements (`POST /api/announce` -> the `announce` event) in the client library
and the CLI, against a real server on a free port."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from serverutil import serving, sessions_of, wait_for

from client import Announcement, PipelinesClient

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "announce-secret"


async def announce(url: str, message: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(
        f"{url}/api/announce", json={"message": message},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as resp:
        assert resp.status == 202, await resp.text()


async def test_library_keeps_and_calls_back_announcements() -> None:
    got: list[Announcement] = []
    async with serving(token=TOKEN) as (_app, url), \
            PipelinesClient(url, token=TOKEN, on_announce=got.append) as pc:
        before = time.time()
        await announce(url, "first")
        await announce(url, "second")
        await wait_for(lambda: len(pc.announcements) == 2, within=10)
    assert [a.message for a in pc.announcements] == ["first", "second"]
    assert got == list(pc.announcements)
    first = got[0]
    assert first.server and before - 5 <= first.at <= time.time() + 5


def test_malformed_announce_payloads_are_ignored() -> None:
    assert Announcement.from_payload({"server": "x"}) is None
    assert Announcement.from_payload("text") is None
    item = Announcement.from_payload({"message": "m", "at": True})
    assert item == Announcement("m", "", 0.0)


async def test_cli_prints_announcements_to_stderr() -> None:
    """A run in progress: the announcement goes to stderr as one line (escaped), results to
    stdout as before."""
    spec = {"nodes": {"src": {"coro": "Source.range", "args": {"stop": 400}},
                      "slow": {"coro": "Flow.delay", "args": {"seconds": 0.01},
                               "properties": {"concurrency": 1}}},
            "graph": {"src": ["slow"], "slow": None}}
    async with serving(token=TOKEN) as (app, url):
        graph = Path(os.environ.get("TMPDIR", "/tmp")) / f"announce-{os.getpid()}.json"
        graph.write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
        env["PIPELINES_TOKEN"] = TOKEN
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "client", "run", str(graph), "--url", url, "--no-progress",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL, cwd=ROOT, env=env)
        try:
            await wait_for(lambda: sessions_of(app) >= 1, within=30)
            await announce(url, "back soon\nreally")
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            graph.unlink(missing_ok=True)
    assert proc.returncode == 0, err
    lines = err.decode().splitlines()
    assert "announce: back soon\\nreally" in lines, lines
    assert out.decode().split() == [str(i) for i in range(400)]
