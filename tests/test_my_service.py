"""examples/my_service: the commands docs/service.md shows run as printed (ports aside) against a
local stand-in for the shop API, and the service lists and runs the developer's coroutines."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from serverutil import free_port, make_settings, serve_app, wait_healthy

from server.app import create_app

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

PRODUCTS = {1: ("pen", 1.5), 2: ("ink", 4.0), 3: ("paper", 2.25)}


def doc_commands() -> list[str]:
    """The bash blocks of the my-service section of docs/service.md, continuations joined."""
    text = (ROOT / "docs/service.md").read_text()
    section = text.split("<!-- section:my-service -->", 1)[1].split("<!-- /section:my-service -->")[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines() if line]


@asynccontextmanager
async def shop_api() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP API on 127.0.0.1: GET /products/<id>. Yields its URL and the paths it served."""
    served: list[str] = []

    async def product(request: web.Request) -> web.Response:
        served.append(request.path)
        name, price = PRODUCTS[int(request.match_info["id"])]
        return web.json_response({"id": int(request.match_info["id"]), "name": name, "price": price})

    app = web.Application()
    app.router.add_get("/products/{id}", product)
    async with serve_app(app) as url:
        yield url, served


async def run(command: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_shell(
        command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_my_service_commands_as_documented(tmp_path: Path) -> None:
    commands = doc_commands()
    assert len(commands) == 3, commands
    server_cmd, registry_cmd, run_cmd = commands
    assert "--coroutines examples.my_service.nodes:plugin" in server_cmd
    port = free_port()
    store = tmp_path / "shop.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINES_", "MY_SERVICE_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # python and pipelines-client of .venv
    async with shop_api() as (api_url, served):
        server_cmd = (server_cmd.replace("http://127.0.0.1:8000", api_url)
                      .replace("--port 8080", f"--port {port} --host 127.0.0.1")
                      .replace("/tmp/shop.jsonl", shlex.quote(str(store))))
        server = await asyncio.create_subprocess_shell(
            "exec env " + server_cmd, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_healthy(url, server, within=20)
            async with aiohttp.ClientSession() as http, http.get(f"{url}/api/registry") as r:
                entries = {e["name"]: e for e in (await r.json())["coroutines"]}
            # Only the developer's coroutines (--no-builtin-coroutines), each with its args form.
            assert set(entries) == {"Shop.ids", "Shop.fetch", "Shop.price", "Shop.store"}
            assert entries["Shop.ids"]["kind"] == "source"
            assert entries["Shop.ids"]["args_schema"]["properties"]["last"]["maximum"] == 10_000
            assert "last" in entries["Shop.ids"]["args_schema"]["required"]
            assert entries["Shop.price"]["args_schema"]["properties"]["tax_percent"]["default"] == 20

            code, out, err = await run(registry_cmd.replace("http://127.0.0.1:8080", url), env)
            assert code == 0, err
            assert re.search(r"^Shop\.ids\s+source\s+Emits the product ids", out, re.M), out
            assert re.search(r"^\s+last: integer \(required\)", out, re.M), out
            assert "Text.upper" not in out

            code, out, err = await run(run_cmd.replace("http://127.0.0.1:8080", url), env)
            assert code == 0, err
            lines = [json.loads(line) for line in out.splitlines()]
            expected = [{"name": n, "cents": round(p * 110)} for n, p in PRODUCTS.values()]
            assert [line["value"] for line in lines] == expected
            assert [line["node"] for line in lines] == ["store"] * 3
            assert sorted(served) == ["/products/1", "/products/2", "/products/3"]
            stored = [json.loads(line) for line in store.read_text().splitlines()]
            assert stored == expected
        finally:
            if server.returncode is None:
                server.send_signal(signal.SIGTERM)
                try:
                    output, _ = await asyncio.wait_for(server.communicate(), 15)
                except TimeoutError:
                    server.kill()
                    output, _ = await server.communicate()
            else:
                output, _ = await server.communicate()
    # The lifespan closed its ClientSession: no "Unclosed client session" warning at exit.
    assert server.returncode == 0, output.decode()
    assert "Unclosed" not in output.decode()


@pytest.mark.browser
async def test_the_page_palette_lists_my_service_with_argument_forms() -> None:
    from browserutil import CHROMIUM, LAUNCH_ARGS, require_chromium
    from playwright.async_api import async_playwright, expect
    from test_page import VIEWPORT

    require_chromium()
    settings = make_settings(coroutines=["examples.my_service.nodes:plugin"],
                             builtin_coroutines=False, test_coroutines=False)
    async with serve_app(create_app(settings)) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            await page.goto(url)
            await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
            await expect(page.locator("#palette li[data-coro]")).to_have_count(4)
            ids = page.locator('#palette li[data-coro="Shop.ids"]')
            await expect(ids.locator(".palette-doc")).to_contain_text("Emits the product ids")
            await expect(ids.locator(".palette-args")).to_contain_text("last: integer (required)")
            await expect(ids.locator(".palette-args")).to_contain_text("first: integer = 1")
            price = page.locator('#palette li[data-coro="Shop.price"] .palette-args')
            await expect(price).to_contain_text("tax_percent: number = 20")
        finally:
            await browser.close()
