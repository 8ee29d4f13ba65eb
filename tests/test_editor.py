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

import browserutil
import pytest
import pytest_asyncio
import yaml
from browserutil import launched_chromium
from playwright.async_api import Browser, Page, expect
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
    async with launched_chromium() as browser:
        yield browser


async def open_page(
    browser: Browser, base_url: str, viewport: dict[str, int], path: str = "/"
) -> tuple[Page, list[str]]:
    """The editor's page, connected, its palette filled (and its console's problems)."""
    page, problems = await browserutil.open_page(browser, base_url, viewport, path)
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


async def shoot(page: Page, name: str) -> None:
    """Save a screenshot for docs/page.md when PIPELINES_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        await page.locator("#editor").evaluate("el => { el.scrollTop = 0; el.scrollLeft = 0; }")
        await page.screenshot(path=str(Path(SCREENSHOTS) / name))


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
    await click_node(page, "coro1")
    await shoot(page, "editor-build.png")

    await page.locator("#run").click()
    if SCREENSHOTS:  # a run in progress (the demo sleeps are slower then)
        await expect(page.locator("#log li[data-seq]").first).to_be_visible()
        await shoot(page, "editor-run.png")
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
    box_inp = await screen_box(page, "inp")
    assert abs(moved["y"] - box["y"] - 80) < 10 < 79 < abs(moved["y"] - box["y"]) + 70
    assert await spec_in_editor(page) == before
    # Positions are kept across a reload (in the browser: a spec has no place for them).
    await page.reload()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    await eventually(lambda: has_node(page, "coro3"), True)
    assert await spec_in_editor(page) == before
    reloaded = await screen_box(page, "coro3")
    first = await screen_box(page, "inp")
    assert abs((reloaded["y"] - first["y"]) - (moved["y"] - box_inp["y"])) < 2
    # An edge that is there already is refused, with the reason.
    await connect(page, "inp", "coro1")
    await expect(page.locator("#editor-note")).to_contain_text("inp already feeds coro1")
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


async def test_the_node_form_follows_the_schema_and_checks_as_you_type(page: Page) -> None:
    # An empty JSON view is an empty graph: Add works without typing "{}" first.
    await page.locator("#editor").fill("")
    await page.locator("#palette-filter").fill("Source.range")
    add = page.locator('#palette li[data-coro="Source.range"] button')
    await add.focus()
    await page.keyboard.press("Enter")  # the palette works from the keyboard too
    form = page.locator("#node-form")
    await expect(form.locator("h3")).to_contain_text("range")
    await expect(form.locator(".form-doc")).to_contain_text("Emits the integers")

    stop = form.locator('[data-field="args.stop"]')
    await expect(stop).to_have_attribute("aria-required", "true")
    await expect(form.locator('.field[data-name="stop"] label')).to_contain_text("stop *")
    step = form.locator('[data-field="args.step"]')
    await expect(step).to_have_attribute("placeholder", "1")
    await expect(form.locator('.field[data-name="step"] .field-help')).to_contain_text("default 1")

    error = form.locator('.field[data-name="stop"] .field-error')
    for typed, message in (("abc", "not a number"), ("1.5", "a whole number"), ("", "required")):
        await stop.fill(typed)
        await expect(error).to_have_text(message)
        await expect(stop).to_have_attribute("aria-invalid", "true")
    assert (await spec_in_editor(page))["nodes"]["range"]["args"] == {"stop": 0}
    await stop.fill("7")
    await expect(error).to_be_hidden()
    await eventually(lambda: spec_in_editor(page), {
        "nodes": {"range": {"coro": "Source.range", "args": {"stop": 7}}}, "graph": {"range": []}
    })

    # Properties come from the spec schema: an enum is a choice, numbers have their bounds.
    await form.locator("summary", has_text="Properties").click()
    on_error = form.locator('[data-field="properties.on_error"]')
    options = await on_error.locator("option").all_text_contents()
    assert options == ["(default)", "skip", "retry", "fail"]
    await on_error.select_option(label="retry")
    concurrency = form.locator('[data-field="properties.concurrency"]')
    await expect(form.locator('.field[data-name="concurrency"] .field-help')).to_contain_text(
        "Items processed at once"
    )
    await concurrency.fill("0")
    await expect(form.locator('.field[data-name="concurrency"] .field-error')).to_have_text("must be ≥ 1")
    await concurrency.fill("3")
    await eventually(
        lambda: spec_in_editor(page),
        {
            "nodes": {
                "range": {
                    "coro": "Source.range",
                    "args": {"stop": 7},
                    "properties": {"on_error": "retry", "concurrency": 3},
                }
            },
            "graph": {"range": []},
        },
    )
    # A change typed in the JSON shows in the form.
    spec = await spec_in_editor(page)
    spec["nodes"]["range"]["args"]["stop"] = 42
    await page.locator("#editor").fill(json.dumps(spec))
    await expect(stop).to_have_value("42")


BROKEN = {
    "nodes": {
        "numbers": {"coro": "Source.range", "args": {"stop": 3}},
        "double": {"coro": "Number.multiply", "args": {"factor": "two"}},
        "lonely": {"coro": "Text.upper"},
    },
    "graph": {"numbers": ["double"], "double": None, "lonely": None},
}


async def test_problems_are_shown_on_the_graph_and_a_refused_run_lists_them_all(page: Page) -> None:
    await page.locator("#editor").fill(json.dumps(BROKEN, indent=2))
    marks = page.locator("#graph .graph-problem")
    double = marks.and_(page.locator('[data-node="double"]'))
    lonely = marks.and_(page.locator('[data-node="lonely"]'))
    # "factor" fails both branches of its int | float type: two messages, one under the other.
    await expect(double).to_have_count(2)
    await expect(double.first).to_contain_text("args.factor")
    await expect(lonely).to_contain_text("no incoming edge")
    # Each message sits just under its node.
    for name, mark in (("double", double.first), ("lonely", lonely)):
        node = await screen_box(page, name)
        box = await mark.bounding_box()
        assert box is not None
        assert 0 <= box["y"] - (node["y"] + node["h"] / 2) < 40, (name, box, node)
        assert node["x"] - node["w"] / 2 - 2 <= box["x"] <= node["x"] + node["w"] / 2
    classes = await page.evaluate(
        """async () => {
            const { canvas } = await import("/static/js/main.js");
            return canvas.cy.nodes(".problem").map((n) => n.data("name")).sort();
        }"""
    )
    assert classes == ["double", "lonely"]
    await shoot(page, "editor-error.png")

    await page.locator("#run").click()
    listed = page.locator("#run-problems li.spec-error")
    in_editor = page.locator("#spec-errors li.spec-error")
    await expect(listed.first).to_be_visible()
    assert await listed.count() == await in_editor.count() >= 2
    # In full: the same words as the server's answer, none cut short.
    assert await listed.all_text_contents() == await in_editor.all_text_contents()
    await expect(page.locator("#run-status")).to_contain_text("Not run")
    await expect(page.locator("#run-problems")).to_be_in_viewport()

    # Fixed, the marks go and the next run lists no problem.
    fixed = json.loads(json.dumps(BROKEN))
    fixed["nodes"]["double"]["args"]["factor"] = 2
    del fixed["nodes"]["lonely"], fixed["graph"]["lonely"]
    await page.locator("#editor").fill(json.dumps(fixed))
    await expect(marks).to_have_count(0)
    await page.locator("#run").click()
    await expect(page.locator("#done-line")).to_contain_text("Done: completed · 3 results")
    await expect(page.locator("#run-problems")).to_be_hidden()


TWO_OUTPUTS = {
    "nodes": {
        "numbers": {"coro": "Source.range", "args": {"stop": 3000}},
        "double": {"coro": "Number.multiply", "args": {"factor": 2}},
        "slow": {"coro": "Flow.delay", "args": {"seconds": 0.02}, "properties": {"concurrency": 2}},
    },
    "graph": {"numbers": ["double", "slow"], "double": None, "slow": None},
}


async def shown_nodes(page: Page) -> set[str]:
    return set(await page.locator("#log li[data-seq] .node").all_text_contents())


async def test_while_running_nodes_show_counts_and_a_click_filters_the_results(page: Page) -> None:
    await page.locator("#editor").fill(json.dumps(TWO_OUTPUTS, indent=2))
    await eventually(lambda: has_node(page, "slow"), True)
    await page.locator("#run").click()
    await expect(page.locator("#metrics tr[data-node='slow'] [data-col='status']")).to_have_text("running")
    await expect(page.locator("#log li[data-seq] .node", has_text="slow").first).to_be_visible()
    await expect(page.locator("#log li[data-seq] .node", has_text="double").first).to_be_visible()
    # The canvas shows each node's state and counters as the metrics come.
    label = await page.evaluate(
        """async () => {
            const { canvas } = await import("/static/js/main.js");
            const node = canvas.view.node("slow");
            return [node.data("state"), node.data("label")];
        }"""
    )
    assert label[0] == "running" and "in " in label[1] and "in –" not in label[1], label

    await click_node(page, "slow")
    await expect(page.locator("#log-node")).to_have_value("slow")
    await eventually(lambda: shown_nodes(page), {"slow"})
    await shoot(page, "editor-run.png")
    await click_node(page, "double")
    await expect(page.locator("#log-node")).to_have_value("double")
    await eventually(lambda: shown_nodes(page), {"double"})
    await page.locator("#cancel").click()
    await expect(page.locator("#done-line")).to_contain_text("Done: cancelled")
    # A click on the background shows every node's results again.
    box = await page.locator("#graph").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + 8, box["y"] + 8)
    await expect(page.locator("#log-node")).to_have_value("")


async def test_results_stay_in_view_at_1440_and_the_layout_holds_at_1024(
    browser: Browser, base_url: str
) -> None:
    for viewport in (WIDE, {"width": 1024, "height": 768}):
        page, problems = await open_page(browser, base_url, viewport)
        try:
            await load_example(page)
            await page.locator("#run").click()
            await expect(page.locator("#done-line")).to_contain_text("Done: completed · 10 results")
            # Nothing wider than the window; the palette and the node form beside the canvas
            # (left and right of it when wide, one above the other on its right at 1024).
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            palette, canvas, side = [
                await page.locator(sel).bounding_box()
                for sel in (".palette-panel", ".canvas-panel", ".side-panel")
            ]
            assert palette and canvas and side
            assert canvas["x"] + canvas["width"] <= side["x"]
            if viewport is WIDE:
                assert palette["x"] + palette["width"] <= canvas["x"]
            else:
                assert canvas["x"] + canvas["width"] <= palette["x"]
                assert palette["y"] + palette["height"] <= side["y"]
            # The graph, the results and the done line on screen together, without scrolling.
            assert await page.evaluate("window.scrollY") == 0
            for sel in ("#graph", "#log", "#done-line"):
                await expect(page.locator(sel)).to_be_in_viewport(ratio=1.0)
            # Node labels readable at 100 %: at least 12 px on screen at 1440 wide.
            zoom = await page.evaluate(
                """async () => (await import("/static/js/main.js")).canvas.cy.zoom()"""
            )
            if viewport is WIDE:
                assert zoom * 13.5 >= 12, zoom
            assert problems == [], problems
        finally:
            await page.context.close()


async def test_share_link_and_yaml_export_and_import(page: Page, tmp_path: Path) -> None:
    spec = await load_example(page, "zip")
    await page.locator("#share").click()
    link = await page.locator("#share-url").input_value()
    assert "#graph=" in link and len(link) < 8000
    # The link opens the page with the graph, in another tab with nothing saved.
    assert page.context.browser is not None
    other, problems = await open_page(page.context.browser, link.split("#")[0], WIDE, link)
    try:
        assert await spec_in_editor(other) == spec
        await expect(other.locator("#editor-note")).to_contain_text("Opened the graph of the link")
        assert "graph=" not in other.url
        assert problems == []
    finally:
        await other.context.close()

    # Too big for a link: said so, no link.
    items = ["x" * 50] * 200
    big = {"nodes": {"words": {"coro": "Source.items", "args": {"items": items}}}, "graph": {"words": None}}
    await page.locator("#editor").fill(json.dumps(big))
    await eventually(lambda: has_node(page, "words"), True)
    await page.locator("#share").click()
    await expect(page.locator("#share-note")).to_contain_text("at most 8000")
    await expect(page.locator("#share-url")).to_have_value("")

    # YAML out and back in.
    await load_example(page, "zip")
    async with page.expect_download() as info:
        await page.locator("#export-yaml").click()
    download = await info.value
    assert download.suggested_filename == "pipeline.yaml"
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    assert "nodes:" in text and "{" not in text.split("\n")[0]
    assert yaml.safe_load(text) == spec
    await page.locator("#new").click()
    edited = text.replace("stop: 20", "stop: 5")
    upload = {"name": "zip.yaml", "mimeType": "application/yaml", "buffer": edited.encode()}
    await page.locator("#import-file").set_input_files(files=[upload])
    await expect(page.locator("#editor-note")).to_contain_text("Imported zip.yaml")
    imported = await spec_in_editor(page)
    assert imported["nodes"]["numbers"]["args"]["stop"] == 5
    assert edges(imported) == edges(spec)
    await eventually(lambda: has_node(page, "square"), True)
    # A YAML file that is not a graph: a clear note, the graph unchanged.
    bad = {"name": "bad.yaml", "mimeType": "application/yaml", "buffer": b"- just\n- a list\n"}
    await page.locator("#import-file").set_input_files(files=[bad])
    await expect(page.locator("#editor-note")).to_contain_text("Cannot import bad.yaml")
    assert await spec_in_editor(page) == imported


async def test_a_graph_built_and_run_from_the_keyboard_alone(page: Page) -> None:
    await page.locator("#new").focus()
    await page.keyboard.press("Enter")
    for coro in ("Source.range", "Number.square"):
        await page.locator("#palette-filter").fill(coro)
        await page.locator(f'#palette li[data-coro="{coro}"] button').focus()
        await page.keyboard.press("Enter")
    form = page.locator("#node-form")
    await expect(form.locator("h3")).to_contain_text("square")
    # Arrow keys on the canvas select the nodes; the form follows.
    await page.locator("#graph").focus()
    await page.keyboard.press("ArrowLeft")
    await expect(form.locator("h3")).to_contain_text("range")
    await expect(page.locator("#graph-selection")).to_have_text("Selected node range (Source.range).")
    await form.locator('[data-field="args.stop"]').focus()
    await page.keyboard.press("Control+a")
    await page.keyboard.type("4")
    await form.get_by_label("Connect to").select_option("square")
    await form.get_by_role("button", name="Connect", exact=True).focus()
    await page.keyboard.press("Enter")
    await expect(form.locator(".connections li")).to_have_text("square remove")
    # The form is drawn again, and the focus stays on the button.
    assert await page.evaluate("document.activeElement.textContent") == "Connect"
    assert edges(await spec_in_editor(page)) == {("range", "square")}
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#done-line")).to_contain_text("Done: completed · 4 results")
    await expect(page.locator("#log li[data-seq] .value")).to_have_text(["0", "1", "4", "9"])
    # Delete from the keyboard: Escape unselects, an arrow selects the first node, Delete.
    await page.locator("#graph").focus()
    await page.keyboard.press("Escape")
    await expect(form.locator("h3")).to_have_count(0)
    await page.keyboard.press("ArrowRight")
    await expect(form.locator("h3")).to_contain_text("range")
    await page.keyboard.press("Delete")
    assert list((await spec_in_editor(page))["nodes"]) == ["square"]
