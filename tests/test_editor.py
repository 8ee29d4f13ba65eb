"""The page as a visual editor, driven by mouse and keyboard in Debian's Chromium.

One server (fast demo sleeps) and one browser for the module; each test gets a fresh context
(so a fresh localStorage) and fails if the page logged a console error or threw.

Set PIPELINES_SCREENSHOTS=docs to save the editor's screenshots of docs/page.md.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browserutil import CHROMIUM, LAUNCH_ARGS, require_chromium
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect
from serverutil import serve

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
DEMO = json.loads((ROOT / "examples/graphs/demo.json").read_text())
SCREENSHOTS = os.environ.get("PIPELINES_SCREENSHOTS")
WIDE = {"width": 1440, "height": 900}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def base_url() -> AsyncIterator[str]:
    # Demo sleeps of 3/2/1 s x 0.01; slower when taking screenshots of a run in progress.
    async with serve(demo_sleep_scale=0.3 if SCREENSHOTS else 0.01) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(
    browser: Browser, base_url: str, viewport: dict[str, int], path: str = "/"
) -> tuple[Page, list[str]]:
    context = await browser.new_context(viewport=viewport, base_url=base_url)  # type: ignore[arg-type]
    page = await context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text} ({message.location})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    await page.goto(path)
    await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#palette li[data-coro]").first).to_be_visible()
    return page, problems


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, base_url: str) -> AsyncIterator[Page]:
    page, problems = await open_page(browser, base_url, WIDE)
    try:
        yield page
        assert problems == [], problems
    finally:
        await page.context.close()


async def eventually(read: Callable[[], Awaitable[Any]], expected: Any) -> None:
    """Poll `read()` until it returns `expected` (the page updates on its own schedule)."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while (value := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {value!r}, not {expected!r}"
        await asyncio.sleep(0.05)


async def spec_in_editor(page: Page) -> dict[str, Any]:
    return dict(json.loads(await page.locator("#editor").input_value()))


async def screen_box(page: Page, name: str, part: str = "node") -> dict[str, float]:
    """Where the canvas drew a node (or its output port), in page pixels."""
    box = await page.evaluate(
        """async ([name, part]) => {
            const { canvas } = await import("/static/js/main.js");
            return canvas.screenBox(name, part);
        }""",
        [name, part],
    )
    assert box is not None, f"node {name} is not on the canvas"
    return dict(box)


async def drop(page: Page, coro: str, x: float, y: float) -> None:
    """Drag a coroutine from the palette onto the canvas at (x, y) of the canvas."""
    await page.locator("#palette-filter").fill(coro)
    item = page.locator(f'#palette li[data-coro="{coro}"]')
    await item.drag_to(page.locator("#graph"), target_position={"x": x, "y": y})


async def click_node(page: Page, name: str) -> None:
    box = await screen_box(page, name)
    await page.mouse.click(box["x"] - box["w"] / 4, box["y"])


async def connect(page: Page, source: str, target: str) -> None:
    """Drag from the output port of `source` onto `target`."""
    port = await screen_box(page, source, "port")
    to = await screen_box(page, target)
    await page.mouse.move(port["x"], port["y"])
    await page.mouse.down()
    await page.mouse.move((port["x"] + to["x"]) / 2, (port["y"] + to["y"]) / 2, steps=4)
    await page.mouse.move(to["x"], to["y"], steps=4)
    await page.mouse.up()


def edges(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(a, b) for a, downs in spec["graph"].items() for b in downs or []}


async def test_build_the_demo_by_mouse_and_keyboard_and_run_it(page: Page) -> None:
    await page.locator("#new").click()
    assert await spec_in_editor(page) == {"nodes": {}, "graph": {}}
    await expect(page.locator("#graph .graph-empty")).to_be_visible()

    # Five nodes dragged from the palette, left to right (the coro1..3 names are their defaults).
    for coro, x, y in (
        ("ProcessFunc.inputcoro", 90, 200),
        ("ProcessFunc.coro1", 290, 200),
        ("ProcessFunc.coro2", 490, 110),
        ("ProcessFunc.coro3", 490, 290),
        ("ProcessFunc.outputcoro", 690, 200),
    ):
        await drop(page, coro, x, y)
    spec = await spec_in_editor(page)
    assert list(spec["nodes"]) == ["inputcoro", "coro1", "coro2", "coro3", "outputcoro"]
    assert edges(spec) == set()

    # Rename and fill in arguments in the form of the selected node.
    await click_node(page, "inputcoro")
    form = page.locator("#node-form")
    await expect(form.locator("h3")).to_contain_text("inputcoro")
    name = form.locator('[data-field="name"]')
    await name.fill("inp")
    await name.press("Enter")
    strings = form.locator('[data-field="args.strings_from_client"]')
    await strings.fill("\n".join(DEMO["nodes"]["inp"]["args"]["strings_from_client"]))

    await click_node(page, "outputcoro")
    await expect(form.locator("h3")).to_contain_text("outputcoro")
    await name.fill("out")
    await name.press("Tab")
    await form.locator("summary", has_text="Properties").click()
    aggregate = form.locator('[data-field="properties.aggregate_inputs"]')
    await expect(aggregate).to_be_checked()  # the default, from the schema
    await aggregate.uncheck()

    # Edges drawn by dragging from a node's output port onto another node.
    for a, b in sorted(edges(DEMO)):
        await connect(page, a, b)
    spec = await spec_in_editor(page)
    assert spec["nodes"] == DEMO["nodes"]
    assert edges(spec) == edges(DEMO)
    await expect(page.locator("#spec-errors")).to_contain_text("The server accepts this spec")

    await page.locator("#run").click()
    await expect(page.locator("#done-line")).to_contain_text("Done: completed · 10 results")
    await expect(page.locator("#log li[data-seq]")).to_have_count(10)
    values = set(await page.locator("#log li[data-seq] .value").all_text_contents())
    expected = {json.dumps(s[::-1].upper()) for s in DEMO["nodes"]["inp"]["args"]["strings_from_client"]}
    expected |= {json.dumps(s[::-1] + "-" + s) for s in DEMO["nodes"]["inp"]["args"]["strings_from_client"]}
    assert values == expected


async def load_example(page: Page, example: str = "demo") -> dict[str, Any]:
    await page.locator(f'#examples button[data-example="{example}"]').click()
    await expect(page.locator("#editor-note")).to_contain_text("Loaded")
    return await spec_in_editor(page)


async def edge_point(page: Page, source: str, target: str) -> dict[str, float]:
    point = await page.evaluate(
        """async ([a, b]) => {
            const { canvas } = await import("/static/js/main.js");
            return canvas.edgePoint(a, b);
        }""",
        [source, target],
    )
    assert point is not None, f"no edge {source} -> {target} on the canvas"
    return dict(point)


async def test_delete_move_layout_undo_and_redo(page: Page) -> None:
    spec = await load_example(page)
    assert edges(spec) == edges(DEMO)

    # An edge: click it, then the Delete button.
    point = await edge_point(page, "coro1", "coro3")
    await page.mouse.click(point["x"], point["y"])
    await expect(page.locator("#delete")).to_be_enabled()
    await page.locator("#delete").click()
    spec = await spec_in_editor(page)
    assert edges(spec) == edges(DEMO) - {("coro1", "coro3")}

    # A node: click it, then the Delete key; its edges go with it.
    await click_node(page, "coro2")
    await page.keyboard.press("Delete")
    spec = await spec_in_editor(page)
    assert "coro2" not in spec["nodes"] and "coro2" not in spec["graph"]
    assert edges(spec) == {("inp", "coro1"), ("coro3", "out")}

    # Undo (button, then Ctrl+Z on the canvas) brings both back; Redo removes the node again.
    await page.locator("#undo").click()
    assert "coro2" in (await spec_in_editor(page))["nodes"]
    await page.locator("#graph").focus()
    await page.keyboard.press("Control+z")
    assert edges(await spec_in_editor(page)) == edges(DEMO)
    await page.keyboard.press("Control+Shift+z")
    await page.locator("#redo").click()
    assert "coro2" not in (await spec_in_editor(page))["nodes"]

    # Moving a node by mouse changes where it is, not the spec.
    before = await spec_in_editor(page)
    box = await screen_box(page, "coro3")
    await page.mouse.move(box["x"] - 30, box["y"])
    await page.mouse.down()
    await page.mouse.move(box["x"] - 30, box["y"] + 80, steps=5)
    await page.mouse.up()
    moved = await screen_box(page, "coro3")
    assert abs(moved["y"] - box["y"] - 80) < 10 < 79 < abs(moved["y"] - box["y"]) + 70
    assert await spec_in_editor(page) == before
    # Auto-layout puts the nodes left to right again: each after the one it feeds from.
    await page.locator("#layout").click()
    xs = {n: (await screen_box(page, n))["x"] for n in ("inp", "coro1", "coro3", "out")}
    assert xs["inp"] < xs["coro1"] and xs["coro3"] < xs["out"], xs


async def test_json_view_and_canvas_stay_in_sync(page: Page) -> None:
    await load_example(page, "zip")
    # Typed JSON shows on the canvas...
    spec = await spec_in_editor(page)
    spec["nodes"]["again"] = {"coro": "Number.square"}
    spec["graph"]["sum"] = ["again"]
    spec["graph"]["again"] = None
    await page.locator("#editor").fill(json.dumps(spec, indent=2))
    await eventually(lambda: has_node(page, "again"), True)
    await edge_point(page, "sum", "again")
    # ...and the canvas's changes show in the JSON; undo covers both.
    await click_node(page, "again")
    await page.keyboard.press("Delete")
    await eventually(lambda: spec_in_editor(page), spec_without(spec, "again"))
    await page.locator("#undo").click()
    await eventually(lambda: spec_in_editor(page), spec)
    await page.locator("#undo").click()  # the typed change
    await eventually(lambda: has_node(page, "again"), False)


async def has_node(page: Page, name: str) -> bool:
    return bool(
        await page.evaluate(
            """async (name) => {
                const { canvas } = await import("/static/js/main.js");
                return canvas.screenBox(name) !== null;
            }""",
            name,
        )
    )


def spec_without(spec: dict[str, Any], name: str) -> dict[str, Any]:
    out = json.loads(json.dumps(spec))
    del out["nodes"][name]
    del out["graph"][name]
    out["graph"] = {
        k: [d for d in v if d != name] if isinstance(v, list) else v for k, v in out["graph"].items()
    }
    return out
