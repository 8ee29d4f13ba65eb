"""The whole several-servers topology started by `scripts/cluster` (deploy/cluster.py) on free
ports: nats-server, redis-server, two `python server.py`, two workers of pool `cpu`, nginx with
sticky sessions. A spec with a node on the pool runs through the proxy on the workers. The original
demo client (python and JavaScript) gets its results through the proxy over long-polling and
websocket; an announcement posted through the proxy reaches the clients of both servers.
Started once for the module; `stop` must end every process it started."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from clusterutil import require_binary
from serverutil import ROOT, demo_expected, free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TOKEN = "cluster-test-token"
DEMO = json.loads((ROOT / "examples" / "graphs" / "demo.json").read_text())
STRINGS = DEMO["nodes"]["inp"]["args"]["strings_from_client"]
SCRIPT = ROOT / "deploy" / "cluster.py"


def cluster(run_dir: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), args[0], "--run-dir", str(run_dir),
                           *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def topology() -> Iterator[dict[str, Any]]:
    for name in ("nats-server", "redis-server", "nginx"):
        require_binary(name)
    # Reachable by `nobody` (pytest's own temporary directories are private), so that a root
    # test run also shows nginx dropping to an unprivileged user.
    run_dir = Path(tempfile.mkdtemp(prefix="pipelines-cluster-"))
    run_dir.chmod(0o755)
    port = free_port()
    started = cluster(run_dir, "start", "--port", str(port), "--workers", "2",
                      "--demo-sleep-scale", "0.01", "--token", TOKEN,
                      # python-engineio's client waits for its pending long-poll GET when it
                      # disconnects, which the server holds for ping interval + timeout.
                      "--server-flag=--ping-interval=1", "--server-flag=--ping-timeout=2")
    state_file = run_dir / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert state is not None
        yield {"url": f"http://127.0.0.1:{port}", "state": state, "run_dir": run_dir}
    finally:
        stopped = cluster(run_dir, "stop")
        if state is not None:
            left = [p["name"] for p in state["processes"] if pid_alive(p["pid"])]
            assert not left, f"still running after stop: {left}"
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        shutil.rmtree(run_dir, ignore_errors=True)


def server_urls(topology: dict[str, Any]) -> list[str]:
    return [f"http://127.0.0.1:{p['port']}" for p in topology["state"]["processes"]
            if p["kind"] == "server"]


async def run_demo(url: str, transport: str, http_session: aiohttp.ClientSession | None = None
                   ) -> tuple[list[Any], dict[str, Any], str]:
    """The original demo client: emit `process_msg` with demo.json, collect `recv` until `done`."""
    sio = socketio.AsyncClient(reconnection=False, http_session=http_session)
    results: list[Any] = []
    done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    @sio.on("recv")
    async def recv(value: Any) -> None:
        results.append(value)

    @sio.on("done")
    async def on_done(payload: dict[str, Any]) -> None:
        if not done.done():
            done.set_result(payload)

    await sio.connect(url, transports=[transport], auth={"token": TOKEN}, wait_timeout=10)
    try:
        used = sio.transport()
        await sio.emit("process_msg", DEMO)
        payload = await asyncio.wait_for(done, 30)
    finally:
        await sio.disconnect()
    return results, payload, used


def test_status_reports_every_part_healthy(topology: dict[str, Any]) -> None:
    status = cluster(topology["run_dir"], "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = json.loads(status.stdout)["processes"]
    assert sorted(r["name"] for r in rows) == [
        "nats", "nginx", "redis", "server1", "server2", "worker1", "worker2"]
    assert all(r["healthy"] for r in rows), rows
    nginx = next(p for p in topology["state"]["processes"] if p["kind"] == "nginx")
    uid = Path(f"/proc/{nginx['pid']}").stat().st_uid  # nginx's master process
    assert uid != 0 and uid == (os.getuid() or pwd.getpwnam("nobody").pw_uid)
    # The processes run the commands of deploy/topology.py (docker-compose.yml runs them too).
    sys.path.insert(0, str(ROOT / "deploy"))
    import topology as facts

    state = topology["state"]
    ports = state["ports"]
    local = "127.0.0.1"
    nats, redis = facts.nats_url(local, ports["nats"]), facts.redis_url(local, ports["redis"])
    argv = {p["name"]: p["argv"][1:] for p in state["processes"]}
    assert argv["nats"] == facts.nats_argv(ports["nats"], str(topology["run_dir"] / "nats"),
                                           ports["nats_monitor"], local)[1:]
    assert argv["redis"] == facts.redis_argv(ports["redis"], local)[1:]
    for p in state["processes"]:
        if p["kind"] == "server":
            expected = facts.server_argv(p["port"], redis, nats, local)[1:]
            if not state["servers_use_nats"]:  # a checkout without the worker pools
                expected = expected[:-2]
            assert argv[p["name"]][:len(expected)] == expected


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_demo_client_through_the_proxy(topology: dict[str, Any], transport: str) -> None:
    results, done, used = await run_demo(topology["url"], transport)
    assert used == transport
    assert done["status"] == "completed"
    assert len(results) == 10
    assert sorted(results) == demo_expected(STRINGS)


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_javascript_client_through_the_proxy(topology: dict[str, Any],
                                                   transport: str) -> None:
    node = require_binary("node", "nodejs")
    if not (ROOT / "node_modules" / "socket.io-client").is_dir():
        pytest.fail("node_modules/socket.io-client is missing: run npm ci (scripts/test does)")
    proc = await asyncio.create_subprocess_exec(
        node, str(ROOT / "tests" / "js" / "demo_client.cjs"), topology["url"], transport,
        str(ROOT / "examples" / "graphs" / "demo.json"), TOKEN,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    answer = json.loads(out.decode().strip().splitlines()[-1])
    assert answer["transport"] == transport
    assert answer["done"]["status"] == "completed"
    assert len(answer["results"]) == 10
    assert sorted(answer["results"]) == demo_expected(STRINGS)


async def test_route_cookie_spreads_polling_clients_over_both_servers(
        topology: dict[str, Any]) -> None:
    """Browsers on one host spread by the page's cookie, and each long-polling session still
    reaches the server holding it (a missed sticky route fails with HTTP 400 'Invalid session').
    Each client here is a browser: its own cookie jar, the page first, then socket.io."""
    browsers = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
                for _ in range(12)]
    clients = []
    try:
        for http in browsers:
            async with http.get(f"{topology['url']}/") as r:
                assert r.status == 200
                assert r.headers["Set-Cookie"].startswith("pipelines_route=")
            async with http.get(f"{topology['url']}/") as r:
                assert "Set-Cookie" not in r.headers  # handed out once, then kept
        for http in browsers:
            sio = socketio.AsyncClient(reconnection=False, http_session=http)
            await sio.connect(topology["url"], transports=["polling"], auth={"token": TOKEN},
                              wait_timeout=10)
            clients.append(sio)
        for _ in range(3):  # several long-poll round trips each
            answers = await asyncio.gather(*(sio.call("registry", timeout=15)
                                             for sio in clients))
            assert all(a["ok"] is True for a in answers)
        async with aiohttp.ClientSession() as direct:
            sessions = []
            for url in server_urls(topology):
                async with direct.get(f"{url}/healthz") as r:
                    sessions.append((await r.json())["sessions"])
        assert sum(sessions) == len(browsers)
        assert all(n > 0 for n in sessions), sessions  # 2**-11 odds of a false failure
        await asyncio.gather(*(sio.disconnect() for sio in clients))
        clients.clear()
        # And a full demo run over long-polling from one of those browsers.
        results, done, _ = await run_demo(topology["url"], "polling", http_session=browsers[0])
        assert done["status"] == "completed" and sorted(results) == demo_expected(STRINGS)
    finally:
        await asyncio.gather(*(sio.disconnect() for sio in clients))
        await asyncio.gather(*(http.close() for http in browsers))


async def test_announce_through_the_proxy_reaches_both_servers(
        topology: dict[str, Any]) -> None:
    clients = []
    got: list[list[dict[str, Any]]] = []
    try:
        for url in server_urls(topology):
            sio = socketio.AsyncClient(reconnection=False)
            inbox: list[dict[str, Any]] = []
            sio.on("announce", inbox.append)
            await sio.connect(url, transports=["websocket"], auth={"token": TOKEN},
                              wait_timeout=10)
            clients.append(sio)
            got.append(inbox)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{topology['url']}/api/announce",
                                 json={"message": "no auth"}) as r:
                assert r.status == 401
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while not all(got):
                assert loop.time() < deadline, got
                async with http.post(f"{topology['url']}/api/announce",
                                     json={"message": "hello every server"},
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                    assert r.status == 202
                    assert (await r.json())["cluster"] is True
                await asyncio.sleep(0.2)
        for inbox in got:
            assert inbox[0]["message"] == "hello every server"
        assert len({inbox[0]["server"] for inbox in got}) == 1  # both from the one server
    finally:
        for sio in clients:
            await sio.disconnect()


def test_no_state_left_when_not_started(tmp_path: Path) -> None:
    assert cluster(tmp_path, "status").returncode == 3
    assert cluster(tmp_path, "stop").returncode == 0


async def test_a_pool_node_runs_on_the_workers_through_the_proxy(topology: dict[str, Any]) -> None:
    """Through nginx, a spec whose middle node is placed on pool `cpu` gets every result, in
    order, computed by the workers the script started (the metrics name them)."""
    spec = {"nodes": {"src": {"coro": "Source.range", "args": {"stop": 200}},
                      "sq": {"coro": "Number.square", "properties": {"pool": "cpu"}},
                      "out": {"coro": "Flow.identity"}},
            "graph": {"src": ["sq"], "sq": ["out"], "out": None}}
    sio = socketio.AsyncClient(reconnection=False)
    values: list[Any] = []
    last_metrics: dict[str, Any] = {}
    done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    @sio.on("results")
    async def on_results(payload: dict[str, Any]) -> None:
        values.extend(item["value"] for item in payload["items"])

    @sio.on("metrics")
    async def on_metrics(payload: dict[str, Any]) -> None:
        last_metrics.update(payload)

    @sio.on("done")
    async def on_done(payload: dict[str, Any]) -> None:
        if not done.done():
            done.set_result(payload)

    await sio.connect(topology["url"], transports=["websocket"], auth={"token": TOKEN},
                      wait_timeout=10)
    try:
        answer = await sio.call("process_msg", (spec, {"results": "batch"}), timeout=10)
        assert answer["ok"] is True, answer
        report = await asyncio.wait_for(done, 60)
    finally:
        await sio.disconnect()
    assert report["status"] == "completed", report
    assert values == [i * i for i in range(200)]
    node = last_metrics["nodes"]["sq"]
    assert node["pool"] == "cpu" and node["workers"] >= 1, node
