"""Real brokers and workers for the distributed tests: `nats-server -js` on a free port with its
own store, and `python -m server.worker` subprocesses that a test can SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from serverutil import ROOT, free_port

__all__ = ["NatsServer", "Workers", "nats_binary", "nats_server", "broker_state", "wait_until"]

NATS_BINARY = "/usr/sbin/nats-server"


def nats_binary() -> str:
    """The nats-server binary; skips the test without it (fails under CI=true)."""
    path = NATS_BINARY if os.path.exists(NATS_BINARY) else shutil.which("nats-server")
    if path is None:
        reason = "nats-server is not installed (Debian package nats-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"distributed tests must run under CI: {reason}")
        pytest.skip(reason)
    return path


async def wait_until(predicate: Any, within: float = 10.0, interval: float = 0.02) -> float:
    """Await `predicate()` (sync or async) until true; return the seconds it took."""
    t0 = time.monotonic()
    while True:
        ok = predicate()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return time.monotonic() - t0
        if time.monotonic() - t0 > within:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


class NatsServer:
    """One nats-server with JetStream, on a free port, with its store in a temp directory."""

    def __init__(self) -> None:
        self.binary = nats_binary()
        self.port = free_port()
        self.store = tempfile.mkdtemp(prefix="pl-nats-")
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                await w.wait_closed()
                return
            except OSError:
                assert self.proc.returncode is None, "nats-server exited at start"
                assert time.monotonic() < deadline, "nats-server did not come up"
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def close(self) -> None:
        await self.kill()
        shutil.rmtree(self.store, ignore_errors=True)


@asynccontextmanager
async def nats_server() -> AsyncIterator[NatsServer]:
    srv = NatsServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


class Workers:
    """Worker subprocesses of one broker; each logs to a file; all killed at the end."""

    def __init__(self, url: str, env: dict[str, str] | None = None) -> None:
        self.url = url
        self.env = env or {}
        self.procs: list[asyncio.subprocess.Process] = []
        self.dir = tempfile.mkdtemp(prefix="pl-workers-")

    async def start(self, pool: str = "cpu", *flags: str, name: str | None = None,
                    faults: str | None = None, env: dict[str, str] | None = None,
                    wait: bool = True, test_coroutines: bool = True,
                    ) -> asyncio.subprocess.Process:
        name = name or f"w{len(self.procs)}"
        proc_env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
        proc_env.update(self.env)
        proc_env.update(env or {})
        if faults:
            proc_env["PIPELINES_WORKER_FAULTS"] = faults
        log = Path(self.dir) / f"{name}.log"
        out = log.open("wb")  # noqa: ASYNC230 (a local temp file, opened once)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.worker", "--pool", pool, "--nats", self.url,
                "--name", name, "--demo-sleep-scale", "0.01",
                *(["--test-coroutines"] if test_coroutines else []), *flags,
                cwd=ROOT, env=proc_env, stdout=out, stderr=asyncio.subprocess.STDOUT)
        finally:
            out.close()
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        if wait:
            deadline = time.monotonic() + 20
            while b"serves pool" not in log.read_bytes():
                assert proc.returncode is None, f"worker exited: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"worker did not start: {log.read_text()}"
                await asyncio.sleep(0.05)
        return proc

    async def kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

    async def close(self) -> None:
        for p in self.procs:
            await self.kill(p)
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n" + p.log.read_text()[-3000:]  # type: ignore[attr-defined]
                         for p in self.procs)


async def broker_state(url: str, pid: str | None = None) -> dict[str, Any]:
    """What the broker holds: subjects with messages per stream, KV keys, consumers of PLR
    (of pipeline `pid` only when given)."""
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        out: dict[str, Any] = {"subjects": {}, "consumers": []}
        streams = await js.streams_info()
        for st in streams:
            name = st.config.name
            info = await js.stream_info(name, subjects_filter=">")
            for subject, count in (info.state.subjects or {}).items():
                if pid is None or pid in subject:
                    out["subjects"][f"{name}:{subject}"] = count
            if name == "PLR":
                for c in await js.consumers_info(name):
                    if pid is None or pid in (c.name or ""):
                        out["consumers"].append(c.name)
        return out
    finally:
        await nc.close()


def dumps(value: Any) -> str:
    return json.dumps(value)
