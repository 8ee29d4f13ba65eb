"""Hostile client, connections: handshake floods, per-address caps, unjoined connections.

A thousand long-polling handshakes from one address used to fill the server-wide connection cap
and refuse everyone for 30 s or more. Now handshakes are metered and capped per client address,
an engine.io connection that has not joined the namespace (with a valid token, when one is set)
is closed after `handshake_timeout`, and sessions are capped per address. The client address is
the TCP peer unless the peer is a trusted proxy, whose X-Forwarded-For then names the client.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

import aiohttp
import pytest
from hostile_util import ATTACKER, OTHER, metric, polling_handshake
from rawsio import RawSio, client_session
from reliability_util import finish_canary, healthz, start_canary
from serverutil import connected, serve, wait_for

from server.admission import ADMISSION
from server.keys import SESSIONS, SIO
from server.settings import Settings

__all__: list[str] = []

TOKEN = "hostile-token"


async def _flood(url: str, count: int) -> list[int]:
    """`count` long-polling handshakes from ATTACKER, as fast as they go; their statuses."""
    async with client_session(ATTACKER) as http:
        results = await asyncio.gather(*(polling_handshake(http, url) for _ in range(count)))
    return [status for status, _ in results]


@pytest.mark.parametrize("token", [None, TOKEN], ids=["open", "token"])
async def test_handshake_flood_locks_out_nobody(token: str | None) -> None:
    """1,000 polling handshakes from one address: most refused (429), the rest expire, and
    everyone else connects meanwhile."""
    server: dict[str, Any] = {"handshake_timeout": 1.0, "max_connections": 400,
                              "handshakes_per_second": 100, "handshake_burst": 200}
    if token:
        server["token"] = token
    async with serve(**server) as url:
        app = serve.last_app  # type: ignore[attr-defined]
        canary, hold, canary_id = await start_canary(url, token)
        try:
            started = time.monotonic()
            statuses = await _flood(url, 1000)
            took = time.monotonic() - started
            accepted = statuses.count(200)
            # The bucket: a burst of 200, then 100 a second, whatever this machine's speed.
            assert set(statuses) <= {200, 429}, set(statuses)
            assert 0 < accepted <= 200 + 100 * took + 5, (accepted, took)
            assert statuses.count(429) == 1000 - accepted
            # Others are not locked out while the flood's connections are open.
            auth = {"token": token} if token else None
            async with connected(url, auth=auth) as other:
                assert (await other.call("registry"))["ok"] is True
            # The flood's connections never joined: closed after handshake_timeout.
            await wait_for(lambda: len(app[SIO].eio.sockets) == 1, within=15)
            assert app[ADMISSION].connections == {"127.0.0.1": 1}  # the canary's, nothing left
            assert await metric(url, "pipelines_connections_closed_total",
                                reason="handshake_timeout") >= accepted
            await healthz(url)
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            if canary.client.connected:
                await canary.client.disconnect()


async def test_wrong_token_connection_is_closed_without_a_session() -> None:
    async with serve(token=TOKEN, handshake_timeout=1.0) as url:
        app = serve.last_app  # type: ignore[attr-defined]
        c = await RawSio.open(url, local=ATTACKER)
        try:
            await c.send('0{"token":"wrong"}')
            refused = await c.next_packet(timeout=5)
            assert refused.type == 4 and "unauthorized" in str(refused.data)
            assert len(app[SESSIONS]) == 0
            with pytest.raises(ConnectionResetError):
                while True:
                    await c.next_packet(timeout=10)
        finally:
            await c.close()
        await wait_for(lambda: len(app[SIO].eio.sockets) == 0, within=10)


async def test_connections_and_sessions_are_capped_per_address() -> None:
    async with serve(max_connections_per_address=6, max_sessions_per_address=4) as url:
        canary, hold, canary_id = await start_canary(url)
        held: list[RawSio] = []
        try:
            for _ in range(4):
                held.append(await RawSio.connect(url, local=ATTACKER))
            with pytest.raises(ConnectionError) as refused:
                held.append(await RawSio.connect(url, local=ATTACKER))
            assert "too_many_sessions" in str(refused.value)
            # Two more engine.io connections fit (6 per address), the next is refused at once.
            for _ in range(2):
                held.append(await RawSio.open(url, local=ATTACKER))
            with pytest.raises(aiohttp.WSServerHandshakeError) as no_more:
                held.append(await RawSio.open(url, local=ATTACKER))
            assert no_more.value.status == 429
            async with client_session(ATTACKER) as http:
                status, body = await polling_handshake(http, url)
            assert status == 429 and "too_many_connections" in body
            # Another address is not affected, and a freed slot is usable again.
            other = await RawSio.connect(url, local=OTHER)
            assert (await other.call("registry"))["ok"] is True
            await other.close()
            await held.pop(0).close()
            await wait_for(lambda: len(serve.last_app[SESSIONS]) == 4, within=10)  # type: ignore[attr-defined]
            held.append(await RawSio.connect(url, local=ATTACKER))
            await healthz(url)
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            for c in held:
                await c.close()
            if canary.client.connected:
                await canary.client.disconnect()
        admission = serve.last_app[ADMISSION]  # type: ignore[attr-defined]
        await wait_for(lambda: not admission.connections and not admission.sessions, within=10)


async def test_forwarded_for_counts_only_behind_a_trusted_proxy() -> None:
    """With 127.0.0.2 trusted as a proxy, X-Forwarded-For names the client; from anyone else
    the header is ignored (a client cannot pick its own address)."""
    async with serve(max_sessions_per_address=2, trusted_proxies=[ATTACKER]) as url:
        def via(client: str) -> dict[str, str]:
            return {"X-Forwarded-For": f"6.6.6.6, {client}"}  # left part: forged, ignored

        held = [await RawSio.connect(url, local=ATTACKER, headers=via("10.0.0.1"))
                for _ in range(2)]
        try:
            with pytest.raises(ConnectionError, match="too_many_sessions"):
                held.append(await RawSio.connect(url, local=ATTACKER, headers=via("10.0.0.1")))
            held.append(await RawSio.connect(url, local=ATTACKER, headers=via("10.0.0.2")))
            # Not through the proxy: the header is ignored, the peer address counts.
            held += [await RawSio.connect(url, local=OTHER, headers=via(f"10.1.0.{i}"))
                     for i in range(2)]
            with pytest.raises(ConnectionError, match="too_many_sessions"):
                held.append(await RawSio.connect(url, local=OTHER, headers=via("10.1.0.9")))
            remotes = sorted(s.remote for s in serve.last_app[SESSIONS].sessions.values())  # type: ignore[attr-defined]
            assert remotes == ["10.0.0.1", "10.0.0.1", "10.0.0.2", OTHER, OTHER], remotes
        finally:
            for c in held:
                await c.close()


@pytest.mark.parametrize(("peer", "header", "expected"), [
    ("10.9.9.9", "1.2.3.4", "10.9.9.9"),                      # peer not trusted: header ignored
    ("127.0.0.1", "1.2.3.4", "1.2.3.4"),                      # one trusted hop
    ("127.0.0.1", "6.6.6.6, 1.2.3.4, 172.16.0.5", "1.2.3.4"),  # two trusted hops; forged left
    ("127.0.0.1", "172.16.0.5", "172.16.0.5"),                # only proxies: the farthest
    ("127.0.0.1", "1.2.3.4, not-an-ip", "127.0.0.1"),         # garbage stops the walk
    ("127.0.0.1", "2001:db8::1", "2001:db8::/64"),            # IPv6 grouped by /64
    ("127.0.0.1", "::ffff:1.2.3.4", "1.2.3.4"),               # IPv4-mapped
])
def test_client_address_reads_forwarded_for_from_the_right(
    peer: str, header: str, expected: str
) -> None:
    from aiohttp.test_utils import make_mocked_request

    from server.admission import client_address

    proxies = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("172.16.0.0/12")]
    request = make_mocked_request("GET", "/", headers={"X-Forwarded-For": header})
    request = request.clone(remote=peer)
    assert client_address(request, proxies) == expected


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.1,nginx")
    assert Settings(trusted_proxies="10.0.0.0/8, ::1").trusted_proxies == ["10.0.0.0/8", "::1"]


async def test_leaving_the_namespace_but_keeping_the_connection_expires() -> None:
    async with serve(handshake_timeout=1.0) as url:
        app = serve.last_app  # type: ignore[attr-defined]
        c = await RawSio.connect(url, local=ATTACKER)
        try:
            await c.send("1")  # socket.io DISCONNECT; the engine.io connection stays open
            await wait_for(lambda: len(app[SESSIONS]) == 0, within=10)
            with pytest.raises(ConnectionResetError):
                while True:
                    await c.next_packet(timeout=10)
        finally:
            await c.close()
        await wait_for(lambda: not app[SIO].eio.sockets and not app[ADMISSION].connections,
                       within=10)
