"""Shared fixtures. Keep this file small: one documented fixture per need.

- `server_url`: base URL of a fresh service app on 127.0.0.1 (real port), default settings with
  the test-only `Test.*` coroutines registered; the demo coroutines keep their real 3/2/1 s
  sleeps (use `serverutil.serve(demo_sleep_scale=0.01)` for fast ones).
- `server_app`: the aiohttp app behind `server_url` (to inspect sessions after a test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from serverutil import serving


@pytest.fixture
async def server_app_url() -> AsyncIterator[tuple[web.Application, str]]:
    """(app, base URL) of a fresh test server; `server_url` and `server_app` pick one."""
    async with serving() as app_url:
        yield app_url


@pytest.fixture
def server_url(server_app_url: tuple[web.Application, str]) -> str:
    """Base URL, e.g. http://127.0.0.1:41234, of a test server (see module docstring)."""
    return server_app_url[1]


@pytest.fixture
def server_app(server_app_url: tuple[web.Application, str]) -> web.Application:
    """The app served at `server_url`."""
    return server_app_url[0]
