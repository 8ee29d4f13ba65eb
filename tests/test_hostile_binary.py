"""Hostile client, binary attachments: the protocol is JSON, so binary is refused and closes.

A socket.io packet announcing attachments used to make the server hold every frame that
followed, waiting for them. Now the announcing packet is answered (`invalid_payload`, with a
negative ack when it asked for one) and the connection is closed; binary websocket frames and
binary long-polling packets likewise. Each attack runs beside a canary session from another
address, which must get all its results; `/healthz` must answer.
"""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest
from hostile_util import ATTACKER, metric, polling_handshake, polling_post
from rawsio import RawSio, client_session
from reliability_util import finish_canary, healthz, start_canary
from serverutil import serve, wait_for

from server.keys import SIO

__all__: list[str] = []


async def test_attachment_announcement_is_refused_and_closes() -> None:
    async with serve() as url:
        app = serve.last_app  # type: ignore[attr-defined]
        canary, hold, canary_id = await start_canary(url)
        try:
            before = await metric(url, "pipelines_malformed_input_total", kind="binary_packet")
            for announced in (1, 1000, 10**9):
                c = await RawSio.connect(url, local=ATTACKER)
                try:
                    await c.send(f'5{announced}-7["process_msg",{{"_placeholder":true,"num":0}}]')
                    answer = (await c.wait_ack(7, timeout=10))[0]
                    assert answer["ok"] is False and answer["error"]["code"] == "invalid_payload"
                    assert "binary" in answer["error"]["message"]
                    event = (await c.wait_event("pipeline_error", timeout=10))[0]
                    assert event["code"] == "invalid_payload" and event["terminal"] is False
                    # What follows is not held: the server closes the connection.
                    with pytest.raises((ConnectionResetError, ConnectionError)):
                        for _ in range(20):
                            await c.send_bytes(b"\x00" * 100_000)
                            await c.next_packet(timeout=10)
                finally:
                    await c.close()
            assert app[SIO]._binary_packet == {}  # nothing waits for attachments
            after = await metric(url, "pipelines_malformed_input_total", kind="binary_packet")
            assert after - before >= 3
            await healthz(url)
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            if canary.client.connected:
                await canary.client.disconnect()


async def test_binary_frames_and_binary_polling_packets_close_the_connection() -> None:
    async with serve() as url:
        app = serve.last_app  # type: ignore[attr-defined]
        canary, hold, canary_id = await start_canary(url)
        try:
            # A binary websocket frame, before and after joining the namespace.
            for join in (False, True):
                c = await (RawSio.connect if join else RawSio.open)(url, local=ATTACKER)
                try:
                    await c.send_bytes(b"\x04" + b"\xff" * 50_000)
                    event = (await c.wait_event("pipeline_error", timeout=10))[0]
                    assert event["code"] == "invalid_payload", event
                    with pytest.raises(ConnectionResetError):
                        await c.next_packet(timeout=10)
                finally:
                    await c.close()
            # Long-polling: a base64 binary message, and a binary socket.io packet.
            async with client_session(ATTACKER) as http:
                for packet in ("b" + base64.b64encode(b"\x01\x02\x03").decode(),
                               '451-["validate",{"_placeholder":true,"num":0}]'):
                    status, opened = await polling_handshake(http, url)
                    assert status == 200, opened
                    sid = opened["sid"]
                    assert await polling_post(http, url, sid, "40") == 200
                    await polling_post(http, url, sid, packet)
                    await wait_for(lambda sid=sid: sid not in app[SIO].eio.sockets, within=10)
            assert app[SIO]._binary_packet == {}
            await healthz(url)
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            if canary.client.connected:
                await canary.client.disconnect()


async def test_binary_is_refused_with_its_ack_in_the_legacy_matrix_shape() -> None:
    """The bad-input matrix's case: `51-1[...]` + bytes still gets its negative ack."""
    async with serve() as url:
        c = await RawSio.connect(url, local=ATTACKER)
        try:
            await c.send('51-1["process_msg",{"_placeholder":true,"num":0}]')
            await c.send_bytes(b"\x00\x01\x02")
            answer = (await c.wait_ack(1, timeout=10))[0]
            assert answer == {"ok": False, "error": answer["error"]}
            assert answer["error"]["code"] == "invalid_payload"
            assert json.dumps(answer)  # plain JSON
        finally:
            await c.close()
        await healthz(url)


async def test_a_client_that_ignores_the_close_is_cut_off() -> None:
    """After a refusal the server closes the websocket itself, whatever the client does."""
    async with serve() as url:
        app = serve.last_app  # type: ignore[attr-defined]
        c = await RawSio.connect(url, local=ATTACKER)
        try:
            await c.send_bytes(b"\x00")
            # Read raw frames without answering anything: the websocket must end.
            async with asyncio.timeout(10):
                while True:
                    msg = await c.ws.receive()
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.CLOSING):
                        break
            await wait_for(lambda: len(app[SIO].eio.sockets) == 0, within=10)
        finally:
            await c.close()
