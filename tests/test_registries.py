"""Serving your own coroutines: `create_app(registry=...)`, `--coroutines`, entry points, clashes,
`--no-builtin-coroutines` (server.registries.load_registry)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from serverutil import (
    ROOT,
    chain_spec,
    connected,
    free_port,
    make_settings,
    serve_app,
    server_process,
)

from pipelines import Processor, Registry
from server.__main__ import settings_from_args
from server.app import create_app
from server.registries import CoroutinePlugin, RegistryConflict, RegistryLoadError, load_registry

MODULE = '''
from pipelines import Registry

registry = Registry()

@registry.processor("{name}", doc="Adds an exclamation mark.")
async def shout(self, q_elt, marks: int = 1):
    return str(q_elt[0]) + "!" * marks


def broken():
    raise RuntimeError("no registry today")
'''


def write_package(root: Path, module: str, name: str, entry_point: str | None = None) -> None:
    """A module `module` registering `name`; with `entry_point`, an installed distribution's
    dist-info declaring it in the group pipelines.coroutines (what pip writes)."""
    (root / f"{module}.py").write_text(MODULE.format(name=name))
    if entry_point is not None:
        info = root / f"{module}_dist-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-dist\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(
            f"[pipelines.coroutines]\n{entry_point} = {module}:registry\n")


def test_flag_is_repeatable_and_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_args(["--coroutines", "a.b:reg", "--coroutines", "c:d, e:f"])
    assert settings.coroutines == ["a.b:reg", "c:d", "e:f"]
    monkeypatch.setenv("PIPELINES_COROUTINES", "x:y,z:w")
    assert settings_from_args([]).coroutines == ["x:y", "z:w"]
    assert settings_from_args(["--no-builtin-coroutines"]).builtin_coroutines is False


def test_load_registry_composes_and_refuses_clashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_package(tmp_path, "mine_ok", "Mine.shout")
    write_package(tmp_path, "mine_clash", "Text.upper")
    write_package(tmp_path, "mine_twin", "Mine.shout")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = load_registry(make_settings(coroutines=["mine_ok:registry"])).names()
    assert "Mine.shout" in names and "Text.upper" in names
    only = load_registry(make_settings(coroutines=["mine_ok:registry"], builtin_coroutines=False))
    assert only.names() == ["Mine.shout"] and only.frozen
    with pytest.raises(RegistryConflict) as info:
        load_registry(make_settings(coroutines=["mine_clash:registry"]))
    assert str(info.value).startswith(
        "coroutine 'Text.upper' is offered twice: by the built-in coroutines and by "
        "--coroutines mine_clash:registry")
    with pytest.raises(RegistryConflict, match="by --coroutines mine_ok:registry and by "
                                                "--coroutines mine_twin:registry"):
        load_registry(make_settings(coroutines=["mine_ok:registry", "mine_twin:registry"]))
    # The clash goes away when the built-ins are switched off.
    assert load_registry(make_settings(coroutines=["mine_clash:registry"],
                                       builtin_coroutines=False)).names() == ["Text.upper"]
    for target, message in [
        ("no_such_module_xyz:registry", "cannot import no_such_module_xyz: ModuleNotFoundError"),
        ("mine_ok:nothing", "mine_ok has no attribute nothing"),
        ("mine_ok", "expected module:attribute"),
        ("mine_ok:broken", "calling it failed: RuntimeError: no registry today"),
        ("os:sep", "expected a pipelines.Registry or a CoroutinePlugin"),
    ]:
        with pytest.raises(RegistryLoadError, match=message):
            load_registry(make_settings(coroutines=[target]))


async def test_start_up_refuses_a_clash_with_one_line(tmp_path: Path) -> None:
    write_package(tmp_path, "mine_clash", "Text.upper")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    env["PYTHONPATH"] = str(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "server.py", "--port", "0", "--coroutines", "mine_clash:registry",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("pipelines-server: error: coroutine 'Text.upper' is offered twice: "
                               "by the built-in coroutines and by --coroutines mine_clash:registry")


async def registry_names(url: str) -> list[str]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/registry") as r:
        assert r.status == 200
        return [e["name"] for e in (await r.json())["coroutines"]]


async def test_installed_package_entry_point_is_served(tmp_path: Path) -> None:
    write_package(tmp_path, "shout_nodes", "Shout.shout", entry_point="shout")
    env = {"PYTHONPATH": str(tmp_path)}
    async with server_process("--test-coroutines", env=env) as (_, url):
        names = await registry_names(url)
        assert "Shout.shout" in names and "Text.upper" in names
        async with connected(url) as rec:
            spec = chain_spec({"coro": "Source.items", "args": {"items": ["hi", "yo"]}},
                              {"coro": "Shout.shout", "args": {"marks": 2}})
            assert (await rec.call("process_msg", spec))["ok"]
            done = await rec.wait_done()
            assert done["status"] == "completed"
            assert sorted(rec.results()) == ["hi!!", "yo!!"]
    async with server_process("--no-entry-point-coroutines", env=env) as (_, url):
        assert "Shout.shout" not in await registry_names(url)
    # A package whose entry point clashes with a built-in stops the start-up too.
    clash = tmp_path / "clash"
    clash.mkdir()
    write_package(clash, "upper_nodes", "Text.upper", entry_point="upper")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "server.py", "--port", "0", cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
        | {"PYTHONPATH": str(clash)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "by the built-in coroutines and by entry point upper = upper_nodes:registry of " \
        "upper_nodes-dist" in err.decode()


async def test_create_app_serves_the_given_registry_and_runs_its_lifespan() -> None:
    events: list[str] = []
    registry = Registry()

    @registry.source("Mine.count", doc="Counts to n.")
    async def count(self: Processor, output_q: Any, n: int) -> None:
        for i in range(n):
            await output_q.put(i)

    @registry.processor("Mine.tag", doc="Tags the item with the open resource.")
    async def tag(self: Processor, q_elt: tuple[Any, ...]) -> str:
        return f"{events[-1]}:{q_elt[0]}"

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan() -> Any:
        events.append("open")
        yield
        events.append("closed")

    app = create_app(make_settings(), registry=CoroutinePlugin(registry, lifespan))
    assert registry.frozen
    async with serve_app(app) as url:
        assert events == ["open"]
        assert await registry_names(url) == ["Mine.count", "Mine.tag"]
        async with connected(url) as rec:
            ok = await rec.call("process_msg", chain_spec(
                {"coro": "Mine.count", "args": {"n": 3}}, {"coro": "Mine.tag"}))
            assert ok["ok"], ok
            assert (await rec.wait_done())["status"] == "completed"
            assert rec.results() == ["open:0", "open:1", "open:2"]
            bad = await rec.call("validate", chain_spec({"coro": "Source.range",
                                                         "args": {"stop": 3}}))
            assert not bad["ok"] and bad["error"]["errors"][0]["code"] == "unknown_coroutine"
    assert events == ["open", "closed"]


async def test_console_script_imports_from_the_current_directory(tmp_path: Path) -> None:
    """`pipelines-server --coroutines mine:registry` run where mine.py is (docs: "the current
    directory is importable"), not from the project root."""
    write_package(tmp_path, "mine_here", "Here.shout")
    port = free_port()
    script = Path(sys.executable).parent / "pipelines-server"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    env.pop("PYTHONPATH", None)
    proc = await asyncio.create_subprocess_exec(
        str(script), "--host", "127.0.0.1", "--port", str(port), "--no-builtin-coroutines",
        "--coroutines", "mine_here:registry", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                assert await registry_names(url) == ["Here.shout"]
                break
            except aiohttp.ClientConnectionError:
                assert proc.returncode is None, "the server exited early"
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the server did not come up")
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
