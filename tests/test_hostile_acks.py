"""Hostile client, forged acks: a client that never reads cannot open the credit window by
sending acks blind. Ack ids are random, so a blind ack matches nothing; the server holds the
client at its window and ends the run with `client_stalled`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hostile_util import beside_canary, raw_run
from rawsio import RawSio
from serverutil import chain_spec, serve

pytestmark = pytest.mark.asyncio

WINDOW = 8
ITEMS = 400


def _spec() -> dict[str, Any]:
    return chain_spec({"coro": "Source.range", "args": {"stop": ITEMS}}, {"coro": "Flow.identity"})


async def _forging_client(
    url: str, mode: str, window_full: asyncio.Event
) -> tuple[dict[str, Any], int, list[int]]:
    """Start a run, read everything but answer no real ack; instead send acks with every id a
    counter could have produced (0 .. ITEMS + 1). Return `done`, the number of results received
    and the ack ids the server asked for; set `window_full` once a window was received."""
    c = await RawSio.connect(url)
    received, asked = 0, []
    forged = 0
    try:
        answer = await c.call("process_msg", _spec(),
                              {"results": mode, "window": WINDOW, "metrics": False}, ack_id=1)
        assert answer["ok"] is True, answer
        while True:
            p = await c.next_packet(timeout=30)
            if p.type == 2 and p.data[0] in ("recv", "results"):
                received += 1 if p.data[0] == "recv" else len(p.data[1]["items"])
                if p.ack_id is not None:
                    asked.append(p.ack_id)
                for ack_id in range(ITEMS + 2):  # blind: every id a counter could have drawn
                    await c.send(f"3{ack_id}[]")
                forged += ITEMS + 2
                if received >= WINDOW:
                    # a request answered after the forged acks: they were all handled by now
                    await c.emit("registry", ack_id=7)
                    await c.wait_ack(7, timeout=30)
                    window_full.set()
            elif p.type == 2 and p.data[0] == "done":
                assert forged > 0
                return p.data[1], received, asked
    finally:
        await c.close()


@pytest.mark.parametrize("mode", ["recv", "batch"])
async def test_blind_acks_do_not_open_the_window(mode: str) -> None:
    async with serve(stall_timeout=6) as url:
        window_full = asyncio.Event()
        async with beside_canary(url):  # the canary is held while the acks are forged
            attack = asyncio.create_task(_forging_client(url, mode, window_full))
            await asyncio.wait([attack, asyncio.create_task(window_full.wait())],
                               timeout=30, return_when=asyncio.FIRST_COMPLETED)
            assert window_full.is_set(), attack
        done, received, asked = await attack
        assert done["status"] == "failed" and done["error"]["code"] == "client_stalled", done
        assert received <= WINDOW, f"{received} results sent past a window of {WINDOW}"
        assert done["results"] <= WINDOW
        # the ids asked for are not a counter: far apart, none small
        assert asked and all(a > 2**20 for a in asked), asked
        assert len(set(asked)) == len(asked)


async def test_reading_clients_still_get_everything() -> None:
    """The same run through a raw client that echoes the ids it got completes (both modes)."""
    async with serve(stall_timeout=5) as url:
        for mode in ("recv", "batch"):
            done, values, errors = await raw_run(
                url, _spec(), {"results": mode, "window": WINDOW, "metrics": False})
            assert done["status"] == "completed", done
            assert values == list(range(ITEMS)) and errors == []
