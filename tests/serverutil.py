"""Run the service in the test's event loop on a real port: `async with serve(**settings) as url`."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from aiohttp import web

from server.__main__ import CONNECTION_GRACE
from server.app import create_app
from server.keys import SESSIONS
from server.settings import Settings

__all__ = [
    "Recorder", "chain_spec", "connected", "demo_expected", "demo_spec", "free_port",
    "make_settings", "serve", "serve_app", "server_process", "serving", "sessions_of", "wait_for",
    "wait_healthy",
]

ROOT = Path(__file__).resolve().parent.parent

#: What tests run with unless they say otherwise: the faulty Test.* coroutines on.
TEST_DEFAULTS: dict[str, Any] = {"test_coroutines": True, "host": "127.0.0.1", "port": 0}


def make_settings(**overrides: Any) -> Settings:
    """Settings for a test server: TEST_DEFAULTS, then `overrides` (field names of Settings)."""
    return Settings(**(TEST_DEFAULTS | overrides))


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 on a free port; yield its base URL; clean up fully on exit."""
    runner = web.AppRunner(app, shutdown_timeout=CONNECTION_GRACE, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server  # the asyncio Server: the only public way to learn port 0's choice
    assert server is not None and server.sockets
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[tuple[web.Application, str]]:
    """Serve a fresh app with `make_settings(**overrides)`; yield (app, base URL).

    After the block the app is shut down the way SIGTERM does it (on_shutdown, cleanup).
    """
    app = create_app(make_settings(**overrides))
    async with serve_app(app) as url:
        yield app, url


@asynccontextmanager
async def serve(**overrides: Any) -> AsyncIterator[str]:
    """Like `serving`, yielding only the base URL (the app is `serve.last_app`)."""
    async with serving(**overrides) as (app, url):
        serve.last_app = app  # type: ignore[attr-defined]
        yield url


async def wait_for(predicate: Any, within: float = 5.0, interval: float = 0.01) -> None:
    """Poll `predicate()` until true (state has no event to wait on); fail after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s: {predicate}")
        await asyncio.sleep(interval)


def sessions_of(app: web.Application) -> int:
    """How many sessions the app holds now."""
    return len(app[SESSIONS])


class Recorder:
    """A python-socketio AsyncClient that records every event it gets and lets a test wait on them.

    Handlers return at once, so every event that asks for an ack is acknowledged (the normal,
    well-behaved client). Set `hold` to an Event to stop acknowledging `recv`/`results` until it
    is set (a stalled client).
    """

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list[Any]] = {}
        self.order: list[tuple[str, Any]] = []
        self.hold: asyncio.Event | None = None
        self._changed = asyncio.Condition()
        self.client.on("*", self._on_any)

    async def _on_any(self, event: str, *args: Any) -> None:
        data = args[0] if len(args) == 1 else list(args)
        self.events.setdefault(event, []).append(data)
        self.order.append((event, data))
        async with self._changed:
            self._changed.notify_all()
        if self.hold is not None and event in ("recv", "results"):
            await self.hold.wait()

    def got(self, event: str) -> list[Any]:
        """Every payload of `event` received so far."""
        return self.events.get(event, [])

    async def wait(self, event: str, count: int = 1, within: float = 10.0) -> list[Any]:
        """Wait until `count` events of that name arrived; return all of them so far."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.got(event)) >= count)
        return self.got(event)

    async def wait_done(self, within: float = 10.0) -> dict[str, Any]:
        """Wait for the run's `done` event; return its payload."""
        done: dict[str, Any] = (await self.wait("done", 1, within))[0]
        return done

    def results(self) -> list[Any]:
        """Every value received, from `recv` and from `results` batches, in arrival order."""
        values: list[Any] = []
        for event, data in self.order:
            if event == "recv":
                values.append(data)
            elif event == "results":
                values.extend(item["value"] for item in data["items"])
        return values

    async def call(self, event: str, *args: Any, within: float = 10.0) -> Any:
        """Emit with an ack and return the ack answer."""
        return await self.client.call(event, tuple(args), timeout=within)

    async def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        await self.client.disconnect()


@asynccontextmanager
async def connected(url: str, **connect_kwargs: Any) -> AsyncIterator[Recorder]:
    """A connected Recorder (websocket transport); disconnected on exit."""
    rec = Recorder()
    connect_kwargs.setdefault("transports", ["websocket"])
    await rec.client.connect(url, **connect_kwargs)
    try:
        yield rec
    finally:
        await rec.close()


def demo_spec(strings: list[str]) -> dict[str, Any]:
    """The original demo's graph (DESIGN section 2) with the given input strings."""
    return {
        "nodes": {
            "inp": {"coro": "ProcessFunc.inputcoro", "args": {"strings_from_client": strings}},
            "coro1": {"coro": "ProcessFunc.coro1"},
            "coro2": {"coro": "ProcessFunc.coro2"},
            "coro3": {"coro": "ProcessFunc.coro3"},
            "out": {"coro": "ProcessFunc.outputcoro", "properties": {"aggregate_inputs": False}},
        },
        "graph": {
            "inp": ["coro1"], "coro1": ["coro2", "coro3"], "coro2": ["out"], "coro3": ["out"],
            "out": None,
        },
    }


def demo_expected(strings: list[str]) -> list[str]:
    """The 2 results per input string the demo graph produces (as a sorted list)."""
    out = []
    for s in strings:
        r = s[::-1]
        out += [r.upper(), r + "-" + s]
    return sorted(out)


def chain_spec(source: dict[str, Any], *steps: dict[str, Any]) -> dict[str, Any]:
    """A linear pipeline: `source` node `src`, then `steps` as nodes n1, n2, ... (last: output)."""
    nodes = {"src": source}
    graph: dict[str, Any] = {}
    prev = "src"
    for i, step in enumerate(steps, 1):
        name = f"n{i}"
        nodes[name] = step
        graph[prev] = [name]
        prev = name
    graph[prev] = None
    return {"nodes": nodes, "graph": graph}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_healthy(url: str, proc: asyncio.subprocess.Process, within: float = 15) -> None:
    """Wait until the server process `proc` answers `GET url/healthz` with 200; fail (with what
    it printed) if it exits first or takes longer than `within` seconds."""
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + within
        while True:
            try:
                async with http.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            if proc.returncode is not None:
                printed = (await proc.stdout.read()).decode() if proc.stdout is not None else ""
                raise AssertionError(f"server exited early ({proc.returncode}): {printed}")
            assert time.monotonic() < deadline, f"server did not come up within {within} s"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def server_process(
    *flags: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`python server.py` as users start it, on a free port, with `flags` and `env` (PIPELINES_*
    variables of the test's own environment left out); yields the process and its base URL once
    `/healthz` answers, and kills it on the way out if it is still running."""
    port = free_port()
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    proc_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "server.py", "--host", "127.0.0.1", "--port", str(port), *flags,
        cwd=ROOT, env=proc_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, proc)
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
