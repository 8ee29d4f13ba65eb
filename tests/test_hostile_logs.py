"""Hostile client, log flood: malformed input is counted, logged a few lines per address, and
never as a traceback.

A few kilobytes of malformed frames (acks and binary packets that do not parse, frames that are
not engine.io, undecodable events, garbage long-polling bodies) used to write megabytes of
tracebacks. Now each is counted in `pipelines_malformed_input_total` and the log gets at most
`log_burst` lines about the address, then `log_lines_per_minute`.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from hostile_util import ATTACKER, metric, polling_handshake, polling_post
from rawsio import RawSio, client_session
from reliability_util import finish_canary, healthz, start_canary
from serverutil import serve

__all__: list[str] = []

#: Each closes its connection (one per connection).
CLOSING_FRAMES = [
    ("socketio", '31["unterminated'),          # a malformed ack
    ("socketio", "3x{]"),                      # an ack that is not even an ack
    ("socketio", '5x-["event"]'),              # a binary event that does not parse
    ("socketio", '61-9[{"_placeholder":true,"num":0}]'),  # a binary ack
    ("socketio", '4{"message":"not from a client"}'),      # CONNECT_ERROR from a client
    ("socketio", "9bogus"),                    # no such socket.io packet type
    ("engineio", "x"),                         # not engine.io at all
    ("engineio", "9" + "z" * 100),             # no such engine.io packet type
    ("engineio", "3" + "{" * 500),             # a control frame carrying a payload
    ("engineio", "b!!!not-base64"),            # base64 binary, and not even that
]
#: Answered with `invalid_payload`; the connection stays.
EVENT_FRAMES = ['2["validate",{', '2["process_msg",' + "[" * 2000, '2[]', '2{"a":1}']
ROUNDS = 5


async def test_malformed_frames_write_a_few_lines_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve() as url:
        canary, hold, canary_id = await start_canary(url)
        try:
            sent = 0
            before = await metric(url, "pipelines_log_lines_suppressed_total")
            for _ in range(ROUNDS):
                for layer, frame in CLOSING_FRAMES:
                    c = await RawSio.connect(url, local=ATTACKER)
                    try:
                        if layer == "socketio":
                            await c.send(frame)
                        else:
                            await c.send_engineio(frame)
                        sent += len(frame)
                        with pytest.raises(ConnectionResetError):
                            while True:
                                await c.next_packet(timeout=10)
                    finally:
                        await c.close()
                c = await RawSio.connect(url, local=ATTACKER)
                try:
                    for frame in EVENT_FRAMES:
                        await c.send(frame)
                        sent += len(frame)
                        event = (await c.wait_event("pipeline_error", timeout=10))[0]
                        assert event["code"] == "invalid_payload", event
                finally:
                    await c.close()
                async with client_session(ATTACKER) as http:
                    status, opened = await polling_handshake(http, url)
                    assert status == 200
                    await polling_post(http, url, opened["sid"], "\x1e".join(["x", "4", "9!"]))
            closing = ROUNDS * len(CLOSING_FRAMES)
            counted = sum([
                await metric(url, "pipelines_malformed_input_total", kind=kind)
                for kind in ("protocol_error", "binary_packet", "undecodable_event")])
            assert counted >= closing + ROUNDS, counted
            assert await metric(url, "pipelines_log_lines_suppressed_total") - before > 0
            await healthz(url)
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            if canary.client.connected:
                await canary.client.disconnect()
    assert sent > 2000
    records = [r for r in caplog.records if not r.name.startswith("aiohttp.access")]
    assert all(r.exc_info is None and r.exc_text is None for r in records), [
        r.getMessage() for r in records if r.exc_info]
    about_attacker = [r for r in records if r.levelno >= logging.WARNING]
    # The burst (10) plus what the rate (30 a minute) refills while the test runs, plus a few
    # lines of the libraries' own (their logger is throttled the same way).
    assert len(about_attacker) <= 30, [r.getMessage() for r in about_attacker]
    written = sum(len(r.getMessage()) for r in records if r.levelno >= logging.INFO)
    assert written < 20_000, written
    for r in records:
        text = r.getMessage()
        assert "\n" not in text and "Traceback" not in text, text[:300]


async def test_malformed_http_requests_write_one_line_each_at_most(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bad HTTP (a bad header, a bad method): aiohttp answers 400; its log lines are throttled
    and carry no traceback."""
    caplog.set_level(logging.DEBUG)
    requests = [b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: abc\r\n\r\n", b"GARBAGE / HTTP/1.1\r\n\r\n"]
    async with serve() as url:
        port = int(url.rsplit(":", 1)[1])
        for _ in range(30):
            for raw in requests:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(ATTACKER, 0))
                writer.write(raw)
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(100), 10)
                assert answer.startswith(b"HTTP/1.") and b" 400 " in answer, answer
                writer.close()
        await healthz(url)
    http_records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(http_records) <= 20, len(http_records)  # the throttle is per process
    assert all(r.exc_info is None for r in http_records)
