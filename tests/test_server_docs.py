"""The service docs match the code: settings and registry in docs/service.md, and the README's
service example runs."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from server.coroutines import build_registry
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def server_section(page: str = "docs/service.md") -> str:
    text = (ROOT / page).read_text()
    return text.split("<!-- section:server -->", 1)[1].split("<!-- /section:server -->", 1)[0]


def test_every_setting_is_documented() -> None:
    section = server_section()
    for name in Settings.model_fields:
        assert f"`PIPELINES_{name.upper()}`" in section, name
        assert f"`--{name.replace('_', '-')}" in section, name


def test_every_registry_coroutine_is_documented() -> None:
    section = server_section()
    for entry in build_registry(test_coroutines=True).describe():
        assert f"| `{entry['name']}` |" in section, entry["name"]


async def test_readme_service_example_runs(server_url: str) -> None:
    code = re.search(r"```python\n(.*?)```", server_section("README.md"), re.S)
    assert code is not None
    script = code.group(1).replace("http://localhost:8080", server_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("{'ok': True, 'pipeline_id': ")
    assert lines[1:6] == ["0", "1", "4", "9", "16"]
    assert lines[6] == "completed 5"
