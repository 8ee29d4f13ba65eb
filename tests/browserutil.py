"""Shared by the browser tests: Debian's Chromium, launched by Playwright, never downloaded."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

__all__ = ["CHROMIUM", "LAUNCH_ARGS", "connected_page", "launched_chromium", "open_page",
           "require_chromium"]

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skip without Chromium, except under CI=true, where a missing browser fails the test."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium; scripts/test does it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run under CI: {reason}")
    pytest.skip(reason)


@asynccontextmanager
async def launched_chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, launched by Playwright (skips or fails as require_chromium)."""
    require_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Browser, base_url: str, viewport: dict[str, int],
                    path: str = "/") -> tuple[Page, list[str]]:
    """The page at `path` in a new context, connected to the server, and the list its console
    errors and uncaught exceptions go to (close it with ``page.context.close()``)."""
    context = await browser.new_context(viewport=viewport, base_url=base_url)  # type: ignore[arg-type]
    page = await context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text} ({message.location})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    try:
        await page.goto(path)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    except BaseException:
        await context.close()
        raise
    return page, problems


@asynccontextmanager
async def connected_page(browser: Browser, base_url: str, viewport: dict[str, int],
                         path: str = "/") -> AsyncIterator[Page]:
    """`open_page` for the length of a test: no console error may have been logged by its end."""
    page, problems = await open_page(browser, base_url, viewport, path)
    try:
        yield page
        assert problems == [], problems
    finally:
        await page.context.close()
