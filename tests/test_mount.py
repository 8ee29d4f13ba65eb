"""`server.setup(app, registry=..., path=...)`: the service mounted into an aiohttp app that has
routes of its own; a pipeline runs through it, and the host's shutdown ends it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest
from aiohttp import web
from serverutil import ROOT, Recorder, chain_spec, free_port, make_settings, serve_app

from pipelines import Processor, Registry
from server import setup
from server.mount import PIPELINES_APP
from server.registries import CoroutinePlugin


def host_app(events: list[str]) -> web.Application:
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="the host's own route")

    app.router.add_get("/hello", hello)
    return app


def shop_plugin(events: list[str]) -> CoroutinePlugin:
    registry = Registry()

    @registry.processor("Shop.label", doc="Labels an item.")
    async def label(self: Processor, q_elt: tuple[Any, ...], prefix: str = "item") -> str:
        return f"{prefix}-{q_elt[0]}"

    @asynccontextmanager
    async def lifespan() -> Any:
        events.append("open")
        yield
        events.append("closed")

    return CoroutinePlugin(registry, lifespan)


async def test_mounted_under_a_prefix() -> None:
    events: list[str] = []
    app = host_app(events)
    service = setup(app, registry=shop_plugin(events), path="/pipelines",
                    settings=make_settings())
    assert app[PIPELINES_APP] is service
    rec = Recorder()
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve_app(app))
        assert events == ["open"]
        http = await stack.enter_async_context(aiohttp.ClientSession())
        async with http.get(f"{url}/hello") as r:
            assert await r.text() == "the host's own route"
        async with http.get(f"{url}/pipelines", allow_redirects=False) as r:
            assert r.status == 308 and r.headers["Location"] == "/pipelines/"
        async with http.get(f"{url}/pipelines/api/registry") as r:
            assert [e["name"] for e in (await r.json())["coroutines"]] == ["Shop.label"]
        async with http.get(f"{url}/pipelines/healthz") as r:
            assert (await r.json())["status"] == "ok"
        async with http.get(f"{url}/api/registry") as r:
            assert r.status == 404  # nothing of the service outside its prefix
        # The page and every file it names, resolved against the page's own address.
        async with http.get(f"{url}/pipelines") as r:
            assert r.status == 200 and str(r.url).endswith("/pipelines/")
            page = await r.text()
        names = re.findall(r'(?:href|src)="([^"#]+)"', page) + re.findall(r'": "(\./[^"]+)"', page)
        assert len(names) >= 5, names
        for name in names:
            async with http.get(urljoin(f"{url}/pipelines/", name)) as r:
                assert r.status == 200, name
        assert urljoin(f"{url}/pipelines/", "api/registry") == f"{url}/pipelines/api/registry"

        # A pipeline through the mounted socket.io endpoint.
        await rec.client.connect(url, socketio_path="/pipelines/socket.io",
                                 transports=["websocket"])
        stack.push_async_callback(rec.close)
        answer = await rec.call("registry")
        assert [e["name"] for e in answer["coroutines"]] == ["Shop.label"]
    assert events == ["open", "closed"]


async def test_pipeline_runs_through_the_mount_and_host_shutdown_ends_it() -> None:
    events: list[str] = []
    app = host_app(events)
    plugin = shop_plugin(events)
    registry = plugin.registry

    @registry.source("Shop.count", doc="Counts to n.")
    async def count(self: Processor, output_q: Any, n: int) -> None:
        for i in range(n):
            await output_q.put(i)

    @registry.processor("Shop.wait", doc="Waits forever from item k on.")
    async def wait(self: Processor, q_elt: tuple[Any, ...], k: int) -> Any:
        if q_elt[0] >= k:
            await asyncio.Event().wait()
        return q_elt[0]

    setup(app, registry=plugin, path="/tools/pipelines/", settings=make_settings())
    rec = Recorder()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(rec.close)
        url = await stack.enter_async_context(serve_app(app))
        await rec.client.connect(url, socketio_path="/tools/pipelines/socket.io",
                                 transports=["websocket"])
        ok = await rec.call("process_msg", chain_spec(
            {"coro": "Shop.count", "args": {"n": 3}}, {"coro": "Shop.label"}))
        assert ok["ok"], ok
        done = await rec.wait_done()
        assert done["status"] == "completed" and rec.results() == ["item-0", "item-1", "item-2"]
        rec.events.clear()
        rec.order.clear()
        ok = await rec.call("process_msg", chain_spec(
            {"coro": "Shop.count", "args": {"n": 5}}, {"coro": "Shop.wait", "args": {"k": 2}}))
        assert ok["ok"], ok
        await rec.wait("recv", 2)
        # Leaving the block shuts the host app down (before the client closes): the service's
        # hooks, run from the host's, end the pipeline and tell the client.
    done = rec.got("done")
    assert done and done[0]["status"] == "cancelled" and done[0]["error"]["code"] == "shutdown"
    assert events == ["open", "closed"]


def test_root_path_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute prefix"):
        setup(web.Application(), path="/", settings=make_settings())
    with pytest.raises(ValueError, match="absolute prefix"):
        setup(web.Application(), path="pipelines", settings=make_settings())


@pytest.mark.browser
async def test_the_mounted_page_works_in_a_browser() -> None:
    """Chromium at <prefix>/: it connects through <prefix>/socket.io, its palette lists the
    served coroutines with their arguments, and a spec runs from it."""
    from browserutil import CHROMIUM, LAUNCH_ARGS, require_chromium
    from test_page import VIEWPORT

    require_chromium()
    from playwright.async_api import async_playwright, expect

    events: list[str] = []
    app = host_app(events)
    plugin = shop_plugin(events)

    @plugin.registry.source("Shop.count", doc="Counts to n.")
    async def count(self: Processor, output_q: Any, n: int) -> None:
        for i in range(n):
            await output_q.put(i)

    setup(app, registry=plugin, path="/tools/pipelines", settings=make_settings())
    problems: list[str] = []
    async with serve_app(app) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            await page.goto(f"{url}/tools/pipelines")
            assert page.url == f"{url}/tools/pipelines/"
            await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
            items = page.locator("#palette li[data-coro]")
            await expect(items).to_have_count(2)
            label = page.locator('#palette li[data-coro="Shop.label"]')
            await expect(label.locator(".palette-args")).to_contain_text('prefix: string = "item"')
            spec = chain_spec({"coro": "Shop.count", "args": {"n": 3}}, {"coro": "Shop.label"})
            await page.locator("#editor").fill(json.dumps(spec))
            await page.locator("#run").click()
            await expect(page.locator("#done-line")).to_contain_text("Done: completed · 3 results")
            values = await page.locator("#log li[data-seq] .value").all_text_contents()
            assert values == ['"item-0"', '"item-1"', '"item-2"']
        finally:
            await browser.close()
    assert problems == []


async def test_the_documented_mount_example_runs() -> None:
    """The python block of 'Mounting into your aiohttp app' in docs/service.md, as a script."""
    text = (ROOT / "docs/service.md").read_text()
    section = text.split("## Mounting into your aiohttp app", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    port = free_port()
    script = code.group(1).replace("port=8080", f"host='127.0.0.1', port={port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"{url}/") as r:
                        assert await r.text() == "my app"
                        break
                except aiohttp.ClientConnectionError:
                    assert proc.returncode is None, "the example exited early"
                    await asyncio.sleep(0.05)
            async with http.get(f"{url}/pipelines/api/registry") as r:
                names = [e["name"] for e in (await r.json())["coroutines"]]
            assert names == ["Shop.fetch", "Shop.ids", "Shop.price", "Shop.store"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, output.decode()
