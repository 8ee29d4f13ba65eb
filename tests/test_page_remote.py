"""The page with distributed mode and a cluster broadcast, in Debian's Chromium: a pool node shows
its badge ("cpu x2") and its workers, and an operator announcement shows as a banner.

Real processes: nats-server and two `server.worker` processes on free ports; the service runs in
the test's process with `nats_url` set (as `python server.py --nats-url URL`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from browserutil import connected_page, launched_chromium
from natsutil import NatsServer, Workers, nats_server
from playwright.async_api import Browser, Page, expect
from serverutil import serving

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.browser, pytest.mark.timeout(180)]

TOKEN = "page-remote-secret"
ITEMS = 600


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def broker() -> AsyncIterator[NatsServer]:
    async with nats_server() as srv:
        yield srv


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def base_url(broker: NatsServer) -> AsyncIterator[str]:
    workers = Workers(broker.url, env={"PIPELINES_ACK_WAIT": "2.0", "PIPELINES_LIVE_TTL": "3.0"})
    try:
        await workers.start("cpu")
        await workers.start("cpu")
        async with serving(nats_url=broker.url, ack_wait=2.0, live_ttl=3.0, broker_timeout=10.0,
                           demo_sleep_scale=0.01, token=TOKEN) as (_app, url):
            yield url
    finally:
        await workers.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, base_url: str) -> AsyncIterator[Page]:
    async with connected_page(browser, base_url, {"width": 1440, "height": 900},
                              f"/#token={TOKEN}") as page:
        yield page


def pool_spec() -> dict[str, Any]:
    return {
        "nodes": {
            "numbers": {"coro": "Source.range", "args": {"stop": ITEMS}},
            "slow": {"coro": "Flow.delay", "args": {"seconds": 0.002},
                     "properties": {"pool": "cpu", "concurrency": 4}},
            "plus": {"coro": "Number.add", "args": {"n": 1}},
        },
        "graph": {"numbers": ["slow"], "slow": ["plus"], "plus": None},
    }


async def badge(page: Page, name: str) -> Any:
    return await page.evaluate(
        """async (name) => {
            const { graph } = await import("/static/js/main.js");
            return graph.badge(name);
        }""",
        name,
    )


async def test_pool_node_shows_its_badge_and_workers(page: Page) -> None:
    await page.locator("#editor").fill(json.dumps(pool_spec()))
    await page.locator("#run").click()
    await expect(page.locator("#done-line")).to_contain_text("completed", timeout=60_000)
    await expect(page.locator("#done-line")).to_contain_text(f"{ITEMS} results")
    row = page.locator('#metrics tr[data-node="slow"]')
    await expect(row.locator('[data-col="pool"]')).to_have_text("cpu")
    await expect(row.locator('[data-col="workers"]')).to_have_text("2")
    assert await badge(page, "slow") == "cpu x2"
    # Nodes in the server's process have no badge and an empty pool cell.
    assert await badge(page, "plus") == ""
    await expect(page.locator('#metrics tr[data-node="plus"] [data-col="pool"]')).to_have_text("")
    await expect(page.locator('#metrics tr[data-node="plus"] [data-col="workers"]')).to_have_text("–")
    # The per-worker counts: the cell's tooltip, and the same numbers as data; they add up.
    workers = row.locator('[data-col="workers"]')
    per_worker = json.loads(await workers.get_attribute("data-per-worker") or "{}")
    assert set(per_worker) <= {"w0", "w1"} and sum(per_worker.values()) == ITEMS, per_worker
    title = await workers.get_attribute("title") or ""
    assert title.startswith("items per worker: "), title
    for name, count in per_worker.items():
        assert f"{name} {count}" in title
    label = await page.evaluate(
        """async () => {
            const { graph } = await import("/static/js/main.js");
            return graph.node("slow").data("label");
        }"""
    )
    assert label.startswith("slow [cpu x2]\n"), label


async def test_announcement_is_a_dismissable_banner(page: Page, base_url: str) -> None:
    banner = page.locator("#announce")
    await expect(banner).to_be_hidden()
    text = "Maintenance at 23:00 <b>UTC</b>"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base_url}/api/announce", json={"message": text},
                             headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 202, await resp.text()
    await expect(banner).to_be_visible()
    # Shown as text, never as markup.
    await expect(page.locator("#announce-message")).to_have_text(text)
    await expect(page.locator("#announce-from")).to_contain_text("via ")
    await page.locator("#announce-dismiss").click()
    await expect(banner).to_be_hidden()
