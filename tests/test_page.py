"""The browser page at / in a real headless Chromium (Debian's), against a real server.

One server and one browser per module; each test gets a fresh browser context (so a fresh
localStorage) and page, and fails if the page logged a console error or threw.

Set PIPELINES_SCREENSHOT=docs/screenshot.png to save the README's screenshot of a finished
demo run (test_demo_graph_runs_and_shows_its_ten_results).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from browserutil import connected_page, launched_chromium
from playwright.async_api import (
    Browser,
    Dialog,
    Page,
    expect,
)
from serverutil import serve

from server.keys import SESSIONS, SIO
from server.static_files import STATIC_DIR, StaticFilesMissing, page_files, setup_static

# One event loop for the module: the server and the browser live as long as it.
pytestmark = pytest.mark.asyncio(loop_scope="module")

VIEWPORT = {"width": 1366, "height": 900}  # a laptop
HEX = re.compile(r"^[0-9a-f]{16}$")


SCREENSHOT = os.environ.get("PIPELINES_SCREENSHOT")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served() -> AsyncIterator[tuple[web.Application, str]]:
    # Fast demo sleeps (3/2/1 s x 0.01); slower for the screenshot, so that metrics events come
    # during the run. The Test.* coroutines are on (serverutil's default).
    async with serve(demo_sleep_scale=0.2 if SCREENSHOT else 0.01) as url:
        yield serve.last_app, url  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def base_url(served: tuple[web.Application, str]) -> str:
    return served[1]


@pytest.fixture(scope="module")
def served_app(served: tuple[web.Application, str]) -> web.Application:
    return served[0]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, base_url: str) -> AsyncIterator[Page]:
    """The page, loaded and connected; after the test, no console error may have been logged."""
    async with connected_page(browser, base_url, VIEWPORT) as page:
        yield page


async def registry(base_url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/api/registry") as resp:
        assert resp.status == 200
        body = await resp.json()
    return list(body["coroutines"])


async def spec_in_editor(page: Page) -> dict[str, Any]:
    return dict(json.loads(await page.locator("#editor").input_value()))


async def set_spec(page: Page, spec: dict[str, Any] | str) -> None:
    await page.locator("#editor").fill(spec if isinstance(spec, str) else json.dumps(spec))


def slow_spec(stop: int = 5000) -> dict[str, Any]:
    """A run long enough to watch and cancel: a fast source into a slow node."""
    return {
        "nodes": {
            "numbers": {"coro": "Source.range", "args": {"stop": stop}},
            "slow": {
                "coro": "Flow.delay",
                "args": {"seconds": 0.05},
                "properties": {"concurrency": 2, "queue_size": 8},
            },
            "out": {"coro": "Flow.identity"},
        },
        "graph": {"numbers": ["slow"], "slow": ["out"], "out": None},
    }


async def test_missing_vendor_files_are_a_clear_start_up_error(tmp_path: Path) -> None:
    with pytest.raises(StaticFilesMissing, match="scripts/vendor"):
        setup_static(web.Application(), vendor_dir=tmp_path / "vendor")


async def test_a_symlinked_file_is_refused(tmp_path: Path) -> None:
    static = tmp_path / "static"
    shutil.copytree(STATIC_DIR, static)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    (static / "page.css").unlink()
    (static / "page.css").symlink_to(secret)
    with pytest.raises(StaticFilesMissing, match="not a regular file"):
        setup_static(web.Application(), static_dir=static)


async def test_every_static_file_is_on_the_list() -> None:
    listed = {f.path for f in page_files()}
    on_disk = {p for p in STATIC_DIR.rglob("*") if p.is_file() and p.name != "index.html"}
    assert on_disk == {p for p in listed if p.is_relative_to(STATIC_DIR)}


async def test_page_is_served_with_its_files(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert "script-src 'self' 'sha256-" in resp.headers["Content-Security-Policy"]
            html = await resp.text()
        for src in re.findall(r'(?:src|href)="(/[^"]+)"', html) + [
            "/vendor/socket.io.esm.min.js",
            "/vendor/cytoscape.esm.min.mjs",
            "/vendor/cytoscape-dagre.mjs",
        ]:
            async with http.get(f"{base_url}{src}") as resp:
                assert resp.status == 200, src
        # Only the listed files: no folder listing, no other node_modules or static file.
        for path in (
            "/vendor/",
            "/static/",
            "/node_modules/cytoscape/package.json",
            "/vendor/../package.json",
            "/static/index.html/../../pyproject.toml",
        ):
            async with http.get(f"{base_url}{path}") as resp:
                assert resp.status == 404, path


@pytest.mark.browser
async def test_page_loads_and_the_palette_lists_the_registry(page: Page, base_url: str) -> None:
    entries = await registry(base_url)
    items = page.locator("#palette li[data-coro]")
    await expect(items).to_have_count(len(entries))
    assert await items.evaluate_all("els => els.map(e => e.dataset.coro)") == [
        e["name"] for e in entries
    ]
    rng = page.locator('#palette li[data-coro="Source.range"]')
    await expect(rng.locator(".kind")).to_have_text("source")
    await expect(rng.locator(".palette-doc")).to_contain_text("Emits the integers")
    await expect(rng.locator(".palette-args")).to_contain_text("stop: integer (required)")
    await expect(rng.locator(".palette-args")).to_contain_text("start: integer = 0")
    await expect(page.locator('#palette li[data-coro="Text.upper"] .kind')).to_have_text(
        "processor"
    )
    # The filter narrows the list.
    await page.locator("#palette-filter").fill("ProcessFunc.")
    await expect(items).to_have_count(5)


@pytest.mark.browser
async def test_palette_adds_a_node_stub(page: Page) -> None:
    await page.locator('#palette li[data-coro="Source.range"] button').click()
    spec = await spec_in_editor(page)
    assert spec["nodes"]["range"] == {
        "coro": "Source.range",
        "args": {"stop": 0},
    }
    assert spec["graph"]["range"] == []
    await expect(page.locator("#editor-note")).to_contain_text('Added node "range"')
    # A second one gets a fresh name; Undo brings the previous text back.
    await page.locator('#palette li[data-coro="Source.range"] button').click()
    assert "range2" in (await spec_in_editor(page))["nodes"]
    await page.locator("#editor-note button", has_text="Undo").click()
    assert "range2" not in (await spec_in_editor(page))["nodes"]


@pytest.mark.browser
async def test_demo_graph_runs_and_shows_its_ten_results(page: Page) -> None:
    await page.locator('#examples button[data-example="demo"]').click()
    spec = await spec_in_editor(page)
    strings = spec["nodes"]["inp"]["args"]["strings_from_client"]
    assert len(strings) == 5 and all(HEX.match(s) for s in strings)
    assert spec["graph"] == {
        "inp": ["coro1"],
        "coro1": ["coro2", "coro3"],
        "coro2": ["out"],
        "coro3": ["out"],
        "out": None,
    }

    await page.locator("#run").click()
    done = page.locator("#done-line")
    await expect(done).to_be_visible()
    await expect(done).to_contain_text("Done: completed · 10 results")
    rows = page.locator("#log li[data-seq]")
    await expect(rows).to_have_count(10)
    assert await rows.evaluate_all("els => els.map(e => Number(e.dataset.seq))") == list(range(10))
    values = await page.locator("#log li[data-seq] .value").all_text_contents()
    expected = {json.dumps(s[::-1].upper()) for s in strings}
    expected |= {json.dumps(s[::-1] + "-" + s) for s in strings}
    assert set(values) == expected
    await expect(page.locator("#run-status")).to_contain_text("Completed")

    # The metrics table says the same as the graph: every node done, with its counts.
    for node, n_in, n_out in (("coro1", 5, 5), ("coro3", 5, 5), ("out", 10, 10)):
        row = page.locator(f'#metrics tr[data-node="{node}"]')
        await expect(row.locator('[data-col="status"]')).to_have_text("done")
        await expect(row.locator('[data-col="in"]')).to_have_text(str(n_in))
        await expect(row.locator('[data-col="out"]')).to_have_text(str(n_out))
    inp = page.locator('#metrics tr[data-node="inp"]')
    await expect(inp.locator('[data-col="status"]')).to_have_text("done")
    await expect(inp.locator('[data-col="out"]')).to_have_text("5")
    await expect(page.locator("#queues tbody tr")).to_have_count(5)

    # The log filters by text (case-insensitive): the reversed string is in both of its results.
    await page.locator("#log-text").fill(strings[0])
    await expect(rows).to_have_count(1)
    await page.locator("#log-text").fill(strings[0][::-1])
    await expect(rows).to_have_count(2)
    await page.locator("#log-text").fill("")
    await expect(rows).to_have_count(10)
    await expect(page.locator("#connection")).to_contain_text("Connected")

    if SCREENSHOT:
        await page.locator("#editor").evaluate("el => { el.scrollTop = 0; el.blur(); }")
        await page.locator("#log-text").blur()
        await page.screenshot(path=SCREENSHOT, full_page=True)


@pytest.mark.browser
async def test_ctrl_enter_runs_and_the_spec_survives_a_reload(page: Page) -> None:
    spec = {
        "nodes": {
            "numbers": {"coro": "Source.range", "args": {"stop": 4}},
            "double": {"coro": "Number.multiply", "args": {"factor": 2}},
        },
        "graph": {"numbers": ["double"], "double": None},
    }
    await set_spec(page, spec)
    await page.locator("#editor").press("Control+Enter")
    await expect(page.locator("#done-line")).to_contain_text("Done: completed · 4 results")
    # the log renders on its own schedule: wait for it rather than read it once
    await expect(page.locator("#log li[data-seq] .value")).to_have_text(["0", "2", "4", "6"])

    await page.reload()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    assert await spec_in_editor(page) == spec


@pytest.mark.browser
async def test_import_and_export_the_spec(page: Page) -> None:
    spec = {
        "nodes": {"words": {"coro": "Source.items", "args": {"items": ["a", "b"]}}},
        "graph": {"words": None},
    }
    upload = {"name": "words.json", "mimeType": "application/json", "buffer": json.dumps(spec).encode()}
    await page.locator("#import-file").set_input_files(files=[upload])
    await expect(page.locator("#editor-note")).to_contain_text("Imported words.json")
    assert await spec_in_editor(page) == spec
    async with page.expect_download() as info:
        await page.locator("#export").click()
    download = await info.value
    assert download.suggested_filename == "pipeline.json"
    saved = await asyncio.to_thread(Path(await download.path()).read_text)
    assert json.loads(saved) == spec


@pytest.mark.browser
async def test_bad_graph_shows_its_errors_inline(page: Page) -> None:
    await set_spec(
        page,
        {
            "nodes": {"a": {"coro": "Nope.missing"}, "b": {"coro": "Text.upper"}},
            "graph": {"a": ["b", "ghost"], "b": None},
        },
    )
    await page.locator("#run").click()
    errors = page.locator("#spec-errors li.spec-error")
    await expect(page.locator('#spec-errors li[data-path="nodes.a.coro"]')).to_contain_text(
        "unknown_coroutine"
    )
    await expect(errors.filter(has_text="ghost").first).to_be_visible()
    await expect(page.locator("#editor")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#run-status")).to_contain_text("Not run")
    await expect(page.locator("#done-line")).to_be_hidden()
    # The path is a button that selects the offending key in the editor.
    await page.locator('#spec-errors li[data-path="nodes.a.coro"] button').click()
    selected = await page.locator("#editor").evaluate(
        "el => el.value.slice(el.selectionStart, el.selectionEnd)"
    )
    assert selected == '"coro"'


@pytest.mark.browser
async def test_json_syntax_errors_show_line_and_column(page: Page) -> None:
    await set_spec(page, '{\n  "nodes": {\n    "a": {"coro": "Text.upper"},\n  },\n  "graph": {}\n}')
    error = page.locator("#spec-errors .syntax-error")
    await expect(error).to_contain_text("line 4, column 3")
    await expect(error).to_contain_text("trailing comma")
    await page.locator("#run").click()
    await expect(page.locator("#run-status")).to_contain_text("fix the JSON")


@pytest.mark.browser
async def test_json_errors_are_located_exactly(page: Page) -> None:
    cases = {
        '{"a": 1}': None,
        '{"a": [true, false, null, -1.5e3, "\\u00e9"]}': None,
        '{"a": 1,}': "L1C9 trailing comma before '}'",
        '[1, 2,]': "L1C7 trailing comma before ']'",
        '{"a": }': "L1C7 expected a value, found '}'",
        '{"a" 1}': "L1C6 expected ':' after key \"a\", found '1'",
        "{'a': 1}": "L1C2 use double quotes for keys",
        '{"a": 1} x': "L1C10 unexpected 'x' after the end of the JSON value",
        "  ": "L1C3 the spec is empty",
        '{"a": NaN}': "L1C7 NaN and Infinity are not JSON",
        '{"a": 1e999}': "L1C7 number 1e999 is out of range",
        '{\n  "a": 1,\n  "a": 2\n}': 'L3C3 duplicate key "a"',
        '{"a": "line\nbreak"}': "L1C12 unterminated string (a string cannot span lines)",
        '{"a": "\\q"}': "L1C8 bad escape '\\q' in a string",
        '{"a": [1, 2}': "L1C12 expected ',' or ']', found '}'",
    }
    found = await page.evaluate(
        """async (texts) => {
            const { findJsonError } = await import("/static/js/spec_editor.js");
            return texts.map((text) => {
                const e = findJsonError(text);
                return e && `L${e.line}C${e.column} ${e.message}`;
            });
        }""",
        list(cases),
    )
    assert dict(zip(cases, found, strict=True)) == cases


@pytest.mark.browser
async def test_metrics_fill_in_and_cancel_stops_a_long_run(page: Page) -> None:
    await set_spec(page, slow_spec())
    await page.locator("#run").click()
    await expect(page.locator("#cancel")).to_be_enabled()

    # Live metrics: the slow node runs, its input queue fills up (8 of 8), results flow.
    slow = page.locator('#metrics tr[data-node="slow"]')
    await expect(slow.locator('[data-col="status"]')).to_have_text("running")
    await expect(slow.locator('[data-col="inflight"]')).to_have_text("2")
    queue = page.locator('#queues tr[data-from="numbers"][data-to="slow"]')
    await expect(queue.locator('[data-col="depth"]')).to_have_text("8")
    await expect(queue.locator('[data-col="capacity"]')).to_have_text("8")
    await expect(queue.locator(".fill-bar")).to_have_attribute("data-level", "high")
    await expect(page.locator("#log li[data-seq]").first).to_be_visible()
    await expect(page.locator("#run-status")).to_contain_text("Running")

    await page.locator("#cancel").click()
    done = page.locator("#done-line")
    await expect(done).to_contain_text("Done: cancelled", timeout=3000)
    await expect(page.locator("#run")).to_be_enabled()
    await expect(page.locator("#cancel")).to_be_disabled()
    await expect(slow.locator('[data-col="status"]')).to_have_text("cancelled")
    text = await done.text_content()
    assert text is not None
    count = int(re.search(r"(\d+) results?", text).group(1))  # type: ignore[union-attr]
    assert 0 < count < 5000


@pytest.mark.browser
async def test_item_errors_are_counted_and_a_failing_node_fails_the_run(page: Page) -> None:
    def spec(on_error: str) -> dict[str, Any]:
        return {
            "nodes": {
                "numbers": {"coro": "Source.range", "args": {"stop": 5}},
                "flaky": {
                    "coro": "Test.fail_at",
                    "args": {"k": 2},
                    "properties": {"on_error": on_error, "concurrency": 1},
                },
            },
            "graph": {"numbers": ["flaky"], "flaky": None},
        }

    await set_spec(page, spec("skip"))
    await page.locator("#run").click()
    done = page.locator("#done-line")
    await expect(done).to_contain_text("Done: completed · 4 results")
    await expect(done).to_contain_text("1 item error")
    await expect(page.locator("#log li.warning")).to_contain_text("node_error")
    await expect(page.locator('#metrics tr[data-node="flaky"] [data-col="errors"]')).to_have_text(
        "1"
    )

    await set_spec(page, spec("fail"))
    await page.locator("#run").click()
    await expect(done).to_contain_text("Done: failed")
    await expect(done).to_contain_text("node_failed")
    await expect(done).to_have_attribute("data-status", "failed")
    await expect(page.locator("#log li.error").first).to_contain_text("node_failed")
    await expect(page.locator('#metrics tr[data-node="flaky"] [data-col="status"]')).to_have_text(
        "failed"
    )
    await expect(page.locator("#run-status")).to_contain_text("Failed")


@pytest.mark.browser
async def test_connection_state_is_shown_and_a_lost_connection_ends_the_run(
    page: Page, served_app: web.Application
) -> None:
    # Record every connection state the badge shows.
    await page.evaluate(
        """() => {
            const badge = document.getElementById("connection");
            window.__states = [badge.dataset.state];
            new MutationObserver(() => window.__states.push(badge.dataset.state))
                .observe(badge, {attributes: true, attributeFilter: ["data-state"]});
        }"""
    )
    await set_spec(page, slow_spec())
    await page.locator("#run").click()
    await expect(page.locator("#log li[data-seq]").first).to_be_visible()
    # This page's session is the only one running a pipeline: the server drops it.
    sessions = served_app[SESSIONS].sessions
    (sid,) = [sid for sid, session in sessions.items() if session.run is not None]
    await served_app[SIO].disconnect(sid)

    await expect(page.locator("#log li.error")).to_contain_text("Connection lost")
    await expect(page.locator("#run-status")).to_contain_text("Connection lost")
    # The page reconnects by itself, and can run again.
    await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#run")).to_be_enabled()
    states = await page.evaluate("window.__states")
    assert "disconnected" in states and states[-1] == "connected", states


@pytest.mark.browser
async def test_a_token_protected_server(browser: Browser) -> None:
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        async with serve(token="s3cret") as url:
            page = await context.new_page()
            await page.goto(url)
            state = page.locator("#connection")
            await expect(state).to_contain_text("needs an access token")
            await expect(state).to_have_attribute("data-state", "disconnected")
            await expect(page.locator("#run")).to_be_disabled()

            async def give_token(dialog: Dialog) -> None:
                await dialog.accept("s3cret")

            page.once("dialog", give_token)
            await page.locator("#token-button").click()
            await expect(state).to_have_attribute("data-state", "connected")
            await expect(page.locator("#token-button")).to_be_hidden()

            # A token in the address works too, and is kept out of the address bar.
            other = await context.new_page()
            await other.goto(f"{url}/#token=s3cret")
            await expect(other.locator("#connection")).to_have_attribute("data-state", "connected")
            assert "token" not in other.url
            await context.close()  # before the server stops: no reconnect attempts
    finally:
        await context.close()


@pytest.mark.browser
async def test_pause_keeps_results_and_clear_empties_the_log(page: Page) -> None:
    spec = {
        "nodes": {"numbers": {"coro": "Source.range", "args": {"stop": 30}}},
        "graph": {"numbers": None},
    }
    # A source alone is its own output node.
    await set_spec(page, spec)
    await page.locator("#log-pause").click()
    await expect(page.locator("#log-pause")).to_have_attribute("aria-pressed", "true")
    await page.locator("#run").click()
    await expect(page.locator("#done-line")).to_contain_text("Done: completed · 30 results")
    await expect(page.locator("#log li[data-seq]")).to_have_count(0)
    await expect(page.locator("#log-summary")).to_contain_text("paused")
    await page.locator("#log-pause").click()
    await expect(page.locator("#log li[data-seq]")).to_have_count(30)
    await page.locator("#log-clear").click()
    await expect(page.locator("#log li")).to_have_count(0)


@pytest.mark.browser
async def test_dark_mode_and_keyboard(browser: Browser, base_url: str) -> None:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="dark", base_url=base_url
    )
    try:
        page = await context.new_page()
        await page.goto("/")
        await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        # Nothing wider than the window at a laptop's width.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # Tab reaches the Run button, New, the graph canvas and the JSON editor, in that order.
        focused: list[str] = []
        for _ in range(90):
            await page.keyboard.press("Tab")
            focused.append(await page.evaluate("document.activeElement.id"))
            if focused[-1] == "editor":
                break
        order = [focused.index(id_) for id_ in ("run", "new", "graph", "editor")]
        assert order == sorted(order), focused
    finally:
        await context.close()
