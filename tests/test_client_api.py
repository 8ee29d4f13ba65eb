"""The client library in-process: PipelinesClient and Run against a real server on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from serverutil import serve, sessions_of, wait_for

from client import (
    AuthError,
    BusyError,
    ClientError,
    ConnectError,
    DisconnectedError,
    DoneReport,
    GraphFileError,
    PipelineFailedError,
    PipelinesClient,
    ProtocolError,
    ResultItem,
    Run,
    SpecValidationError,
    demo_graph,
)
from server.keys import SESSIONS

GRAPHS = Path(__file__).resolve().parent.parent / "examples" / "graphs"


def chain(stop: int, *steps: dict[str, Any]) -> dict[str, Any]:
    """A straight pipeline: Source.range(stop) then each step (node dicts) in order."""
    nodes: dict[str, Any] = {"src": {"coro": "Source.range", "args": {"stop": stop}}}
    names = ["src"]
    for i, step in enumerate(steps):
        nodes[f"n{i}"] = step
        names.append(f"n{i}")
    graph: dict[str, Any] = {a: [b] for a, b in zip(names, names[1:], strict=False)}
    graph[names[-1]] = None
    return {"nodes": nodes, "graph": graph}


SLOW = {"coro": "Flow.delay", "args": {"seconds": 0.05}, "properties": {"concurrency": 2}}


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serve(demo_sleep_scale=0.01) as base:
        yield base


@pytest.fixture
async def client(url: str) -> AsyncIterator[PipelinesClient]:
    async with PipelinesClient(url) as c:
        yield c


# -- results ---------------------------------------------------------------------------------


async def test_results_in_order_with_report(client: PipelinesClient) -> None:
    run = await client.submit(chain(3000, {"coro": "Number.add", "args": {"n": 1}}))
    assert run.pipeline_id and run.info is not None and run.info.outputs == ["n0"]
    items = await run.collect()
    assert [i.seq for i in items] == list(range(3000))
    assert [i.value for i in items] == [n + 1 for n in range(3000)]
    assert {i.node for i in items} == {"n0"}
    report = await run.wait()
    assert report.status == "completed" and report.ok
    assert report.results == 3000
    assert report.nodes["src"]["out"] == 3000 and report.nodes["n0"]["in"] == 3000
    assert report.pipeline_id == run.pipeline_id


async def test_submit_from_file_and_recv_mode(client: PipelinesClient) -> None:
    run = await client.submit(GRAPHS / "pair_with_reverse.yaml")
    pairs = [item.value async for item in run]
    assert [p[1] for p in pairs] == [p[0][::-1] for p in pairs] and len(pairs) == 4

    legacy = await client.submit(demo_graph(["ab", "cd"]), results="recv")
    items = await legacy.collect()
    assert len(items) == 4
    assert all(i.node is None for i in items)
    assert [i.seq for i in items] == [0, 1, 2, 3]
    assert sorted(i.value for i in items) == sorted(["BA", "ba-ab", "DC", "dc-cd"])
    assert (await legacy.wait()).results == 4


async def test_slow_reader_holds_back_the_server(url: str) -> None:
    """Unread results stop the server's output (credit window), then all arrive in order."""
    total = 20_000
    async with PipelinesClient(url) as c:
        run = await c.submit(chain(total, {"coro": "Flow.identity"}), window=32, buffer=16, metrics=False)
        session = next(iter(serve.last_app[SESSIONS].sessions.values()))  # type: ignore[attr-defined]
        await wait_for(
            lambda: run.received >= 16 and session.run is not None and session.run.window.full,
            within=10,
        )
        # Nothing more should move now; give it time to (wrongly) do so, then look.
        await asyncio.sleep(0.3)
        held = run.received
        src_out = session.run.plumber.metrics()["nodes"]["src"]["out"]
        assert 16 <= held <= 16 + 16 + 32  # buffer + one batch + the window
        assert src_out < 2000  # bounded queues stopped the source too
        items = await run.collect()
        assert [i.value for i in items] == list(range(total))
        assert (await run.wait()).results == total


async def test_metrics_stream_while_running(client: PipelinesClient) -> None:
    run = await client.submit(chain(20, SLOW), metrics_interval=0.1)
    snapshots: list[dict[str, Any]] = []

    async def watch() -> None:
        async for snap in run.watch_metrics():
            snapshots.append(snap)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(watch())
        items = await run.collect()
    assert len(items) == 20
    assert len(snapshots) >= 2
    assert all(set(s["nodes"]) == {"src", "n0"} for s in snapshots)
    outs = [s["nodes"]["n0"]["out"] for s in snapshots]
    assert outs == sorted(outs) and outs[-1] <= 20
    assert run.metrics is snapshots[-1]


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_mid_run_then_reuse_connection(client: PipelinesClient) -> None:
    run = await client.submit(chain(1000, SLOW))
    seen: list[ResultItem] = []
    async for item in run:
        seen.append(item)
        if len(seen) == 3:
            break
    started = time.monotonic()
    report = await run.cancel()
    assert time.monotonic() - started < 2
    assert report.status == "cancelled"
    assert report.results < 1000
    assert [i.seq for i in seen] == [0, 1, 2]
    # The rest of the stream ends (results sent before the cancel, then nothing).
    rest = await run.collect()
    assert [i.seq for i in rest] == list(range(3, 3 + len(rest)))
    assert 3 + len(rest) == report.results
    # Cancelling again is harmless; the connection takes a new pipeline.
    assert (await run.cancel()) is report
    again = await client.submit(chain(5, {"coro": "Flow.identity"}))
    assert [i.value async for i in again] == [0, 1, 2, 3, 4]


async def test_cancel_while_another_task_reads(client: PipelinesClient) -> None:
    run = await client.submit(chain(1000, SLOW))

    async def read() -> list[ResultItem]:
        return await run.collect()

    async with asyncio.TaskGroup() as tg:
        reader = tg.create_task(read())
        await wait_for(lambda: run.received >= 2)
        report = await client.cancel()
    assert report is not None and report.status == "cancelled"
    assert len(reader.result()) == report.results


# -- typed errors ----------------------------------------------------------------------------


async def test_invalid_spec_raises_spec_validation_error(client: PipelinesClient) -> None:
    bad = {
        "nodes": {
            "src": {"coro": "Source.range", "args": {"stop": "ten"}},
            "x": {"coro": "__builtins__.eval"},
        },
        "graph": {"src": ["x", "ghost"], "x": None},
    }
    with pytest.raises(SpecValidationError) as info:
        await client.submit(bad)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, ClientError)
    assert err.code == "invalid_spec"
    codes = {(i["path"], i["code"]) for i in err.issues}
    assert ("nodes.x.coro", "unknown_coroutine") in codes
    assert ("nodes.src.args.stop", "invalid_value") in codes
    assert any(code == "unknown_node" for _, code in codes)
    assert "nodes.x.coro: unknown_coroutine:" in str(err)
    # Nothing is left half-submitted: the same connection runs a good graph.
    assert client.run is None
    assert len(await (await client.submit(chain(3, {"coro": "Flow.identity"}))).collect()) == 3

    with pytest.raises(SpecValidationError) as info:
        await client.validate(bad)
    assert info.value.code == "invalid_spec"
    assert await client.validate(GRAPHS / "fanout_zip.yaml") == ["row", "total"]


async def test_busy_and_file_errors(client: PipelinesClient, tmp_path: Path) -> None:
    run = await client.submit(chain(1000, SLOW))
    with pytest.raises(BusyError) as info:
        await client.submit(chain(3, {"coro": "Flow.identity"}))
    assert isinstance(info.value, RuntimeError) and info.value.code == "busy"
    assert client.run is run  # the running pipeline is untouched
    await run.cancel()

    with pytest.raises(GraphFileError) as file_info:
        await client.submit(tmp_path / "missing.yaml")
    assert isinstance(file_info.value, ValueError)
    assert "no such file" in str(file_info.value)
    with pytest.raises(SpecValidationError, match="not JSON"):
        await client.submit({"nodes": {"a": {"coro": print}}, "graph": {"a": None}})
    assert client.run is None
    (tmp_path / "g.json").write_text('{"nodes": {}}')
    with pytest.raises(GraphFileError, match="missing key"):
        await client.submit(str(tmp_path / "g.json"))


async def test_failed_run_raises_pipeline_failed(client: PipelinesClient) -> None:
    spec = chain(50, {"coro": "Test.fail_at", "args": {"k": 5}, "properties": {"on_error": "fail"}})
    run = await client.submit(spec)
    with pytest.raises(PipelineFailedError) as info:
        async for _ in run:
            pass
    err = info.value
    assert isinstance(err, RuntimeError)
    assert err.code == "node_failed" and err.node == "n0"
    assert "planned failure at item 5" in err.message
    assert isinstance(err.report, DoneReport) and err.report.status == "failed"
    report = await run.wait()  # wait() reports instead of raising
    assert report.status == "failed" and not report.ok
    with pytest.raises(PipelineFailedError):
        report.raise_for_status()


async def test_item_errors_are_collected_not_raised(client: PipelinesClient) -> None:
    run = await client.submit(chain(6, {"coro": "Test.fail_when", "args": {"value": 3}}))
    values = [i.value async for i in run]
    assert values == [0, 1, 2, 4, 5]
    assert run.error_count == 1
    assert run.errors[0]["code"] == "node_error" and run.errors[0]["node"] == "n0"
    assert (await run.wait()).nodes["n0"]["errors"] == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connect_errors_are_typed() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(ConnectError) as info:
        async with PipelinesClient(url):
            pass
    assert isinstance(info.value, ConnectionError)
    assert "connection refused" in str(info.value)
    assert time.monotonic() - started < 5

    async with serve(token="s3cret") as secured:
        with pytest.raises(AuthError) as auth_info:
            await PipelinesClient(secured).connect()
        assert isinstance(auth_info.value, PermissionError)
        assert auth_info.value.code == "unauthorized"
        assert isinstance(auth_info.value, ConnectError)
        async with PipelinesClient(secured, token="s3cret") as ok:
            assert [e.name for e in await ok.registry()]

    async with serve(max_sessions=1) as full, PipelinesClient(full):
        with pytest.raises(ConnectError) as full_info:
            await PipelinesClient(full).connect()
        assert not isinstance(full_info.value, AuthError)
        assert full_info.value.code == "too_many_sessions"

    idle = PipelinesClient(url)
    with pytest.raises(DisconnectedError):
        await idle.registry()


# -- disconnects -----------------------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy in front of the server whose connections can be cut (a network failure)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        self.cut()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()

    def cut(self) -> None:
        """Reset every connection, both sides, without a goodbye."""
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()


async def test_disconnect_while_running_raises_and_server_cancels(url: str) -> None:
    app = serve.last_app  # type: ignore[attr-defined]
    port = int(url.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)
    proxy_cut_at = 0.0
    async with proxy as proxied, PipelinesClient(proxied) as c:
        run = await c.submit(chain(1000, SLOW))
        got: list[ResultItem] = []
        with pytest.raises(DisconnectedError) as info:
            async for item in run:
                got.append(item)
                if len(got) == 2:
                    proxy_cut_at = time.monotonic()
                    proxy.cut()
        assert time.monotonic() - proxy_cut_at < 2
        assert isinstance(info.value, ConnectionError)
        assert [i.seq for i in got] == list(range(len(got))) and len(got) >= 2
        assert run.finished and run.report is None
        with pytest.raises(DisconnectedError):
            await run.wait()
        with pytest.raises(DisconnectedError):
            await c.submit(chain(3, {"coro": "Flow.identity"}))
    # The server saw the socket die and tore the session (and its pipeline) down.
    await wait_for(lambda: sessions_of(app) == 0, within=5)


async def test_close_while_another_task_reads(client: PipelinesClient) -> None:
    run = await client.submit(chain(1000, SLOW))

    async def read() -> BaseException | None:
        try:
            async for _ in run:
                pass
        except DisconnectedError as exc:
            return exc
        return None

    async with asyncio.TaskGroup() as tg:
        reader = tg.create_task(read())
        await wait_for(lambda: run.received >= 1)
        await client.close()
    error = reader.result()
    assert isinstance(error, DisconnectedError)
    assert "connection closed by the client" in str(error)
    assert not client.connected


@pytest.mark.slow  # the test server's shutdown takes its 5 s shutdown_timeout
async def test_server_shutdown_ends_the_run_with_a_report() -> None:
    async with serve(demo_sleep_scale=0.01) as base:
        c = PipelinesClient(base)
        await c.connect()
        run = await c.submit(chain(1000, SLOW))
        await wait_for(lambda: run.received >= 1)
    # Leaving `serve` shut the server down the way SIGTERM does: the client was told.
    try:
        report = await asyncio.wait_for(run.wait(), 10)
        assert report.status == "cancelled"
        assert report.error is not None and report.error["code"] == "shutdown"
    finally:
        await c.close()


# -- the run's reassembly, fed directly ------------------------------------------------------


def _bare_run(grace: float = 0.2, buffer: int = 1024) -> Run:
    async def no_cancel(pid: str | None) -> None:
        raise AssertionError("not expected")

    return Run(mode="batch", buffer=buffer, done_grace=grace, cancel_request=no_cancel)


def _done(results: int, status: str = "completed") -> DoneReport:
    return DoneReport.from_payload(
        {"pipeline_id": None, "status": status, "elapsed": 0.1, "results": results, "nodes": {}}
    )


async def test_run_reorders_and_drops_duplicates() -> None:
    run = _bare_run()
    await run._feed_batch([{"node": "a", "seq": 2, "value": "c"}, {"node": "a", "seq": 3, "value": "d"}])
    assert run.received == 0
    await run._feed_batch([{"node": "a", "seq": 0, "value": "a"}, {"node": "a", "seq": 1, "value": "b"}])
    await run._feed_batch([{"node": "a", "seq": 1, "value": "dup"}])
    await run._set_done(_done(4))
    assert [i.value async for i in run] == ["a", "b", "c", "d"]


async def test_run_waits_for_results_that_trail_done() -> None:
    run = _bare_run(grace=5)
    await run._set_done(_done(2))

    async def late() -> None:
        await run._feed_batch([{"node": "a", "seq": 0, "value": 0}, {"node": "a", "seq": 1, "value": 1}])

    async with asyncio.TaskGroup() as tg:
        reader = tg.create_task(run.collect())
        tg.create_task(late())
    assert [i.value for i in reader.result()] == [0, 1]


async def test_run_reports_missing_results_as_protocol_error() -> None:
    run = _bare_run(grace=0.2)
    await run._feed_batch([{"node": "a", "seq": 1, "value": 1}])
    await run._set_done(_done(2))
    with pytest.raises(ProtocolError, match="gap at seq 0"):
        await run.collect()
