"""The built wheel, installed into a fresh venv, serves the page and runs pipelines.

The wheel is built from the checkout (`pip wheel --no-deps`) and installed with `--no-deps`
into a new venv; its dependencies come from the test's own environment through a .pth line
(re-downloading aiohttp and friends would only test PyPI). The server is then started as
`pipelines-server` from a folder outside the checkout, so nothing of the checkout is imported.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from serverutil import connected, free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow
in_module_loop = pytest.mark.asyncio(loop_scope="module")


def _run(*cmd: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, ROOT, cwd=out)
    (built,) = out.glob("pipelines-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; dependencies from this environment."""
    where = tmp_path_factory.mktemp("venv")
    env_dir = where / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", env_dir, cwd=where)
    python = env_dir / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel, cwd=where)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=where).strip())
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def test_wheel_claims_only_its_own_top_level_names(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"pipelines", "pipelines_server", "pipelines_client"}
    assert "pipelines_server/static/index.html" in names
    assert "pipelines_server/vendor/manifest.json" in names
    assert "pipelines/py.typed" in names


@pytest.fixture(scope="module")
def engine_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install pipelines` from the wheel: the engine and its dependencies."""
    where = tmp_path_factory.mktemp("engine")
    env_dir = where / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", env_dir, cwd=where)
    python = env_dir / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel, cwd=where)
    return env_dir


def test_engine_alone_needs_only_pydantic(wheel: Path, engine_venv: Path, tmp_path: Path) -> None:
    """`pip install pipelines` pulls in no web, terminal or metrics library, and runs without."""
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    base = [line.split(":", 1)[1].strip() for line in meta.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert [re.split(r"[<>=!~ ;\[]", req)[0].lower() for req in base] == ["pydantic"], base
    extras = {line.split(":", 1)[1].strip() for line in meta.splitlines()
              if line.startswith("Provides-Extra:")}
    assert {"server", "client"} <= extras
    python = engine_venv / "bin" / "python"
    code = (
        "import asyncio, importlib.util\n"
        "from pipelines import Plumber\n"
        "print([m for m in ('aiohttp', 'socketio', 'rich', 'prometheus_client', 'yaml')"
        " if importlib.util.find_spec(m)])\n"
        "async def src(self, output_q, n: int):\n"
        "    for i in range(n):\n"
        "        await output_q.put(i)\n"
        "async def sq(self, q_elt):\n"
        "    return q_elt[0] ** 2\n"
        "async def main():\n"
        "    p = Plumber({'nodes': {'s': {'coro': src, 'args': {'n': 4}}, 'q': {'coro': sq}},"
        " 'graph': {'s': ['q'], 'q': None}}, collect=True)\n"
        "    print([r.value async for r in p.results()])\n"
        "asyncio.run(main())\n"
    )
    assert _run(python, "-c", code, cwd=tmp_path).splitlines() == ["[]", "[0, 1, 4, 9]"]


@pytest.mark.parametrize("script", ["pipelines-server", "pipelines-client"])
def test_a_script_without_its_extra_says_what_to_install(
    engine_venv: Path, tmp_path: Path, script: str
) -> None:
    done = subprocess.run([str(engine_venv / "bin" / script), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    extra = script.removeprefix("pipelines-")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{script}: error: {done.stderr.split()[2]} is missing: install the {extra} extra, "
        f"pip install 'pipelines[{extra}]'"
    ], done.stderr


def test_installed_names_and_no_checkout(venv: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.util, pipelines, pipelines_server, pipelines_client;"
        "print(pipelines_server.__file__);"
        "print(importlib.util.find_spec('server'), importlib.util.find_spec('client'))"
    )
    out = _run(venv / "bin" / "python", "-c", code, cwd=tmp_path).splitlines()
    assert out[0].startswith(str(venv)), out
    assert out[1] == "None None"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def installed_url(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """`pipelines-server` from the fresh venv, started in an empty folder; its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    env.pop("PYTHONPATH", None)
    proc = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "pipelines-server"), "--host", "127.0.0.1", "--port", str(port),
        "--demo-sleep-scale", "0.05",
        cwd=tmp_path_factory.mktemp("elsewhere"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, proc, within=30)
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


@in_module_loop
async def test_installed_server_serves_the_page(installed_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(installed_url + "/") as r:
            assert r.status == 200
            page = await r.text()
        assert '<script type="importmap">' in page
        for path in ("/vendor/socket.io.esm.min.js", "/vendor/cytoscape.esm.min.mjs",
                     "/static/js/main.js", "/static/page.css"):
            async with http.get(installed_url + path) as r:
                assert r.status == 200, path
                assert len(await r.read()) > 100, path
        async with http.get(installed_url + "/api/registry") as r:
            assert r.status == 200
            registry = await r.json()
        assert "Number.square" in str(registry)


@in_module_loop
async def test_installed_server_runs_a_pipeline(installed_url: str) -> None:
    spec = {
        "nodes": {"src": {"coro": "Source.range", "args": {"stop": 5}}, "sq": {"coro": "Number.square"}},
        "graph": {"src": ["sq"], "sq": None},
    }
    async with connected(installed_url) as rec:
        ack = await rec.call("process_msg", spec, within=30)
        assert ack["ok"] is True, ack
        done = await rec.wait_done(within=30)
    assert done["status"] == "completed", done
    assert sorted(rec.results()) == [0, 1, 4, 9, 16]


@in_module_loop
async def test_installed_client_script_runs_the_demo(installed_url: str, venv: Path, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "pipelines-client"), "demo", "--url", installed_url, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert len(out.decode().splitlines()) == 10 and "done: completed, 10 results" in err.decode()
