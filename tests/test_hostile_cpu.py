"""Hostile client, CPU: decoding and validation are metered per address, cheap checks first.

Thirty sessions validating near-limit specs, or connections sending 1 MB frames, used to take
the server's time from everyone. Now an unknown event's frame is answered from its head without
decoding its body, large frames are decoded off the event loop, and decoding plus validation
are charged to the client address (`address_cpu_share`); an address over its share gets
`rate_limited` until it recovers, while other addresses are served as before.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from hostile_util import ATTACKER, metric
from rawsio import RawSio, client_session
from reliability_util import finish_canary, healthz, start_canary
from serverutil import serve

from server.wire import first_step_charged

__all__: list[str] = []


def near_limit_spec(width: int = 62, items: int = 1000) -> dict[str, Any]:
    """A valid spec close to the default limits: 64 nodes, 124 edges, ~57 KB of args."""
    nodes: dict[str, Any] = {"src": {"coro": "Source.items", "args": {"items": ["x" * 50] * items}}}
    graph: dict[str, Any] = {"src": [f"n{i}" for i in range(width)], "out": None}
    for i in range(width):
        nodes[f"n{i}"] = {"coro": "Flow.identity"}
        graph[f"n{i}"] = ["out"]
    nodes["out"] = {"coro": "Flow.identity"}
    return {"nodes": nodes, "graph": graph}


async def test_unknown_event_frames_are_answered_without_decoding() -> None:
    """1 MB frames of an unknown event whose body is not even JSON: the answer is
    `unknown_event` (from the head), never `invalid_payload` (which would mean it was parsed)."""
    async with serve() as url:
        canary, hold, canary_id = await start_canary(url)
        attackers = [await RawSio.connect(url, local=ATTACKER) for _ in range(3)]
        try:
            body = '{"x":"' + "y" * 1_000_000  # unterminated: undecodable
            for round_ in range(5):
                for n, c in enumerate(attackers):
                    await c.send(f'2{round_ * 10 + n + 1}["mine_bitcoin",' + body[:999_000])
            for n, c in enumerate(attackers):
                answer = (await c.wait_ack(n + 1, timeout=20))[0]
                assert answer["error"]["code"] == "unknown_event", answer
            await healthz(url)
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            for c in attackers:
                await c.close()
            if canary.client.connected:
                await canary.client.disconnect()


async def test_validation_is_metered_per_address() -> None:
    """Ten sessions of one address validating near-limit specs: past the address's share they
    get `rate_limited`; a session of another address validates the same spec meanwhile."""
    spec = near_limit_spec()
    frame = json.dumps(["validate", spec])
    async with serve(address_cpu_share=0.01, address_cpu_burst=0.02) as url:
        canary, hold, canary_id = await start_canary(url)
        attackers = [await RawSio.connect(url, local=ATTACKER) for _ in range(10)]
        try:
            first = await attackers[0].call("validate", spec, ack_id=50, timeout=30)
            assert first["ok"] is True, first  # served until the share is spent
            codes: list[str] = []
            for round_ in range(5):
                for c in attackers:
                    await c.send(f"2{round_ + 1}{frame}")
                for c in attackers:
                    answer = (await c.wait_ack(round_ + 1, timeout=30))[0]
                    codes.append("ok" if answer["ok"] else answer["error"]["code"])
            assert "rate_limited" in codes, codes
            assert set(codes) <= {"ok", "rate_limited"}, codes
            mine = await canary.call("validate", spec, within=30)
            assert mine["ok"] is True, mine
            cut = await metric(url, "pipelines_errors_total", code="over_budget")
            limited = await metric(url, "pipelines_errors_total", code="rate_limited")
            assert cut + limited >= codes.count("rate_limited")
            await healthz(url)
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            for c in attackers:
                await c.close()
            if canary.client.connected:
                await canary.client.disconnect()


async def test_an_address_recovers_its_share() -> None:
    async with serve(address_cpu_share=0.01, address_cpu_burst=0.005,
                     submission_burst=100, submissions_per_second=100) as url:
        c = await RawSio.connect(url, local=ATTACKER)
        try:
            frame = json.dumps(["validate", near_limit_spec()])
            answers = []
            for i in range(1, 21):
                await c.send(f"2{i}{frame}")
                answers.append((await c.wait_ack(i, timeout=30))[0])
                if not answers[-1]["ok"]:
                    break
            assert answers[-1]["error"]["code"] == "rate_limited", answers[-1]
            assert "share" in answers[-1]["error"]["message"], answers[-1]
            async with asyncio.timeout(30):
                while True:  # the share refills: served again
                    await asyncio.sleep(0.5)
                    answer = await c.call("validate", near_limit_spec(width=2), ack_id=99)
                    if answer["ok"]:
                        break
        finally:
            await c.close()


async def test_http_validation_shares_the_address_budget() -> None:
    """`POST /api/validate` is charged to the same per-address share as the socket."""
    spec = near_limit_spec()
    async with serve(address_cpu_share=0.01, address_cpu_burst=0.02,
                     http_validations_per_second=1000, http_validation_burst=1000) as url:
        statuses = []
        async with client_session(ATTACKER) as http:
            for _ in range(60):
                async with http.post(f"{url}/api/validate", json=spec) as r:
                    statuses.append(r.status)
                if r.status == 429:
                    break
        assert statuses[0] == 200 and 429 in statuses, statuses
        async with client_session() as http, http.post(f"{url}/api/validate", json=spec) as r:
            assert r.status == 200  # another address is served


async def test_large_acks_and_connects_are_handled_like_events() -> None:
    """Acks and connects of near 1 MB (many small values) are decoded off the loop like events:
    the connection goes on working and other sessions are served."""
    body = json.dumps([[i, "v"] for i in range(60_000)])
    async with serve() as url:
        canary, hold, canary_id = await start_canary(url)
        c = await RawSio.open(url, local=ATTACKER)
        try:
            await c.send('0{"token":' + body + "}")  # connect with a large auth payload
            joined = await c.next_packet(timeout=30)
            assert joined.type == 0, joined
            for n in range(3):
                await c.send(f"3{900 + n}" + body)  # acks of nothing the server asked
            assert (await c.call("registry", ack_id=5, timeout=30))["ok"] is True
            await healthz(url)
            await finish_canary(canary, hold, canary_id)
        finally:
            hold.set()
            await c.close()
            if canary.client.connected:
                await canary.client.disconnect()


def _burn(seconds: float) -> None:
    """Spend `seconds` of this thread's CPU time."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


async def test_an_address_is_charged_its_packets_work_not_what_runs_while_it_awaits() -> None:
    """A packet's handling is charged the CPU of its first step (decoding and dispatch), not
    what other tasks of the thread run while it awaits: a connect handler awaiting while
    another session's pipeline works (or, in these tests, the client encoding its next frame)
    must not push the address over its share."""
    charged: list[float] = []
    go_on = asyncio.Event()

    async def handling() -> str:
        _burn(0.02)  # the packet's own work
        await go_on.wait()
        return "answered"

    async def meanwhile() -> None:
        _burn(0.3)  # someone else's work, while the packet's handling awaits
        go_on.set()

    other = asyncio.create_task(meanwhile())
    assert await first_step_charged(handling(), charged.append) == "answered"
    await other
    assert len(charged) == 1 and 0.02 <= charged[0] < 0.15, charged


async def test_a_packets_error_is_raised_and_its_work_charged() -> None:
    charged: list[float] = []

    async def bad() -> None:
        _burn(0.01)
        raise ValueError("not a packet")

    with pytest.raises(ValueError, match="not a packet"):
        await first_step_charged(bad(), charged.append)
    assert len(charged) == 1 and charged[0] >= 0.01, charged
