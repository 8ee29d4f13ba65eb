"""Shared by the browser tests: Debian's Chromium, launched by Playwright, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "LAUNCH_ARGS", "require_chromium"]

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
