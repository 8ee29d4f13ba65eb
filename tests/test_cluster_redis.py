"""Several servers sharing a Redis socket.io manager (real redis-server, real sockets).

`announce` reaches clients of every server; results never go through Redis; a Redis that dies
does not stop running pipelines, and the manager reconnects when it is back.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from clusterutil import redis_server
from serverutil import (
    chain_spec,
    connected,
    free_port,
    server_process,
    serving,
    sessions_of,
    wait_for,
)

from server.__main__ import settings_from_args
from server.cluster import SERVER_ID as SERVER_ID_KEY
from server.cluster import stop_listener

pytestmark = pytest.mark.redis

TOKEN = "cluster-secret"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as (_, port):
        yield f"redis://127.0.0.1:{port}/0"


async def announce(url: str, body: Any, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.post(
        f"{url}/api/announce", data=json.dumps(body) if not isinstance(body, bytes) else body,
        headers=headers,
    ) as r:
        return r.status, await r.json()


def slow_spec(items: int, delay: float) -> dict[str, Any]:
    return chain_spec({"coro": "Source.range", "args": {"stop": items}},
                      {"coro": "Flow.delay", "args": {"seconds": delay}},
                      {"coro": "Number.add", "args": {"n": 1}})


async def test_announce_reaches_clients_of_every_server(redis_url: str) -> None:
    async with serving(redis_url=redis_url, token=TOKEN) as (app_a, url_a), \
            serving(redis_url=redis_url, token=TOKEN) as (app_b, url_b):
        auth = {"token": TOKEN}
        async with connected(url_a, auth=auth) as on_a, connected(url_b, auth=auth) as on_b:
            # At most once: a message published before B's listener subscribed is lost, so
            # announce until B has heard one (its listener was started with the app).
            for _ in range(100):
                status, answer = await announce(url_a, {"message": "maintenance at 23:00"})
                assert status == 202 and answer["ok"] is True and answer["cluster"] is True
                await asyncio.sleep(0.1)
                if on_b.got("announce"):
                    break
            got_b = await on_b.wait("announce", 1, within=10)
            got_a = await on_a.wait("announce", 1, within=10)
            for got in (got_a[0], got_b[0]):
                assert got["message"] == "maintenance at 23:00"
                assert got["server"] == app_a[SERVER_ID_KEY] != app_b[SERVER_ID_KEY]


async def test_manager_is_started_with_the_app_not_on_first_connection(redis_url: str) -> None:
    """A server with no client yet already listens on the channel (python-socketio would
    subscribe only when the first client connects)."""
    redis = aioredis.Redis.from_url(redis_url)
    try:
        async def subscribers() -> int:
            counts = dict(await redis.pubsub_numsub("pipelines"))
            return int(counts.get(b"pipelines", 0))

        assert await subscribers() == 0
        async with serving(redis_url=redis_url) as (app_a, _), \
                serving(redis_url=redis_url) as (app_b, _):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while await subscribers() < 2:
                assert loop.time() < deadline, "the servers did not subscribe"
                await asyncio.sleep(0.05)
            assert sessions_of(app_a) == sessions_of(app_b) == 0
        deadline = loop.time() + 10
        while await subscribers() > 0:  # and they unsubscribe when they stop
            assert loop.time() < deadline, "a stopped server is still subscribed"
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


async def test_server_starts_and_runs_while_redis_is_unreachable() -> None:
    async with serving(redis_url=f"redis://127.0.0.1:{free_port()}/0", token=TOKEN) as (_, url):
        async with connected(url, auth={"token": TOKEN}) as client:
            ack = await client.call("process_msg", slow_spec(5, 0.0))
            assert ack["ok"] is True, ack
            await client.wait_done()
            assert client.results() == [1, 2, 3, 4, 5]
        status, answer = await announce(url, {"message": "nobody else hears this"})
        assert status == 202 and answer["cluster"] is True


async def test_announce_needs_a_token_and_a_valid_body(redis_url: str) -> None:
    async with serving(redis_url=redis_url) as (_, url):
        status, answer = await announce(url, {"message": "hi"})
        assert status == 403 and answer["error"]["code"] == "announce_disabled"
    async with serving(redis_url=redis_url, token=TOKEN, max_announce_bytes=16) as (_, url):
        status, answer = await announce(url, {"message": "hi"}, token=None)
        assert status == 401 and answer["error"]["code"] == "unauthorized"
        status, answer = await announce(url, {"message": "hi"}, token="wrong")
        assert status == 401 and answer["error"]["code"] == "unauthorized"
        for bad in ([], {"message": ""}, {"message": 3}, {"message": "x", "to": "sid"},
                    b"{not json", b'{"message": NaN}', b'{"message": "a", "message": "b"}',
                    b'{"message": "\\ud800"}', b'{"message": ["x"]}'):
            status, answer = await announce(url, bad)
            assert status == 400 and answer["error"]["code"] == "invalid_payload", bad
        status, answer = await announce(url, {"message": "x" * 17})
        assert status == 413 and answer["error"]["code"] == "invalid_payload"


async def test_results_never_go_through_redis(redis_url: str) -> None:
    seen: list[dict[str, Any]] = []
    listener = aioredis.Redis.from_url(redis_url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe("pipelines")

    async def listen() -> None:
        async for message in pubsub.listen():
            seen.append(json.loads(message["data"]))

    task = asyncio.create_task(listen())
    try:
        async with serving(redis_url=redis_url, token=TOKEN) as (_, url):
            async with connected(url, auth={"token": TOKEN}) as client:
                ack = await client.call("process_msg", slow_spec(20, 0.0))
                assert ack["ok"] is True, ack
                await client.wait_done()
                assert client.results() == list(range(1, 21))
                await announce(url, {"message": "after the run"})
                await wait_for(lambda: any(m.get("event") == "announce" for m in seen), 10)
        assert [m["event"] for m in seen if m.get("method") == "emit"] == ["announce"], seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()
        await listener.aclose()


@pytest.mark.slow
async def test_redis_dying_does_not_stop_pipelines() -> None:
    with redis_server() as (proc, port):
        url_redis = f"redis://127.0.0.1:{port}/0"
        async with serving(redis_url=url_redis, token=TOKEN) as (_, url_a), \
                serving(redis_url=url_redis, token=TOKEN) as (_, url_b):
            auth = {"token": TOKEN}
            async with connected(url_a, auth=auth) as on_a, connected(url_b, auth=auth) as on_b:
                on_a.hold = asyncio.Event()  # no acks: the run waits mid-stream on its window
                ack = await on_a.call("process_msg", slow_spec(40, 0.01), {"window": 4})
                assert ack["ok"] is True, ack
                await on_a.wait("recv", 1)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                assert not on_a.got("done")  # certainly still running when Redis died
                on_a.hold.set()
                done = await on_a.wait_done(within=30)
                assert done["status"] == "completed"
                assert on_a.results() == list(range(1, 41))  # complete, in order, no doubles
                assert not on_a.got("pipeline_error")
                # Redis gone: new connections and new runs work as before.
                async with connected(url_b, auth=auth) as late:
                    ack = await late.call("process_msg", slow_spec(3, 0.0))
                    assert ack["ok"] is True, ack
                    await late.wait_done()
                    assert late.results() == [1, 2, 3]
                # Redis gone: an announcement still reaches this server's own clients.
                status, _ = await announce(url_a, {"message": "redis is down"})
                assert status == 202
                await on_a.wait("announce", 1)
                # Redis back on the same port: the managers reconnect by themselves.
                with redis_server(port):
                    for _ in range(300):
                        if any(a["message"] == "redis is back" for a in on_b.got("announce")):
                            break
                        await announce(url_a, {"message": "redis is back"})
                        await asyncio.sleep(0.1)
                    assert any(a["message"] == "redis is back" for a in on_b.got("announce"))
                    # And a new pipeline runs as before.
                    ack = await on_b.call("process_msg", slow_spec(5, 0.0))
                    assert ack["ok"] is True, ack
                    await on_b.wait_done()
                    assert on_b.results() == [1, 2, 3, 4, 5]


@pytest.mark.slow
@pytest.mark.parametrize("redis_up", [True, False], ids=["redis-up", "redis-gone"])
async def test_sigterm_with_the_redis_manager_exits_zero(redis_url: str, redis_up: bool) -> None:
    """The manager's listener and connections end with the app, Redis alive or not."""
    url_redis = redis_url if redis_up else f"redis://127.0.0.1:{free_port()}/0"
    async with server_process("--redis-url", url_redis, "--test-coroutines") as (proc, url):
        async with connected(url) as busy:
            ack = await busy.call("process_msg", chain_spec(
                {"coro": "Source.range", "args": {"stop": 10}}, {"coro": "Test.hang"}))
            assert ack["ok"] is True, ack
            await busy.wait("pipeline_started")
            proc.send_signal(signal.SIGTERM)
            done = await busy.wait_done(within=10)
            assert done["error"]["code"] == "shutdown"
            output, _ = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, output.decode(errors="replace")
        assert b"Traceback" not in output, output.decode(errors="replace")


def test_redis_url_is_checked_at_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        settings_from_args(["--redis-url", "http://127.0.0.1:6379"])
    assert exit_info.value.code == 2
    assert "--redis-url: must start with redis://" in capsys.readouterr().err
    assert settings_from_args(["--redis-url", ""]).redis_url is None  # empty: unset
    assert settings_from_args([]).redis_url is None


async def test_servers_stop_every_time_over_many_quick_starts(redis_url: str) -> None:
    # A server stopped right after it started used to hang now and then (about one time in
    # twenty): the Redis client swallowed the cancellation of the manager's listener, which
    # went back to reading, and the shutdown waited for it forever.
    loop = asyncio.get_running_loop()
    for i in range(100):
        t0 = loop.time()
        async with asyncio.timeout(10):
            async with serving(redis_url=redis_url) as (_, url):
                status, _answer = await announce(url, {"message": "hi"})
                assert status == 403
        assert loop.time() - t0 < 8, i


async def test_a_listener_that_swallows_a_cancellation_is_stopped_all_the_same() -> None:
    cancels: list[int] = []
    stop = asyncio.Event()

    async def stubborn(swallow: int) -> None:
        # as the Redis client's read sometimes does: a cancellation caught, back to waiting
        while True:
            try:
                await stop.wait()
                return
            except asyncio.CancelledError:
                cancels.append(1)
                if len(cancels) > swallow:
                    raise

    task = asyncio.create_task(stubborn(1))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        assert await stop_listener(task, wait=0.05) is True
    assert task.cancelled() and len(cancels) == 2

    cancels.clear()
    task = asyncio.create_task(stubborn(10**6))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        assert await stop_listener(task, tries=3, wait=0.01) is False  # given up, not waited on
    assert len(cancels) == 3 and not task.done()
    stop.set()
    await task
