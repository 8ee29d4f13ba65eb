"""Helpers of the hostile-client tests: attacker addresses, metrics, long-polling handshakes, and
one attack run beside a canary session and a health check."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from rawsio import RawSio
from reliability_util import finish_canary, healthz, start_canary

__all__ = [
    "ATTACKER", "OTHER", "beside_canary", "metric", "polling_handshake", "polling_post", "raw_run",
]

#: Source addresses the attacks come from (Linux routes all of 127.0.0.0/8 to loopback); the
#: canaries connect from 127.0.0.1, so per-address limits on an attacker never touch them.
ATTACKER = "127.0.0.2"
OTHER = "127.0.0.3"


async def metric(url: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample of the server at `url` (0 if absent)."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as r:
        text = await r.text()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


async def polling_handshake(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    """One engine.io long-polling handshake: (HTTP status, the OPEN payload or the body)."""
    async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as r:
        body = await r.text()
        if r.status == 200 and body.startswith("0"):
            return r.status, json.loads(body[1:])
        return r.status, body


async def polling_post(http: aiohttp.ClientSession, url: str, sid: str, payload: str) -> int:
    """POST engine.io packets (`payload`, already encoded) to a long-polling session."""
    async with http.post(f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}",
                         data=payload.encode()) as r:
        await r.read()
        return r.status


@asynccontextmanager
async def beside_canary(url: str) -> AsyncIterator[None]:
    """Hold a canary session mid-stream during the block; then check /healthz and that the
    canary got every result, once, in order."""
    rec, hold, pipeline_id = await start_canary(url)
    try:
        yield
        await healthz(url)
    finally:
        await finish_canary(rec, hold, pipeline_id)


async def raw_run(
    url: str, spec: dict[str, Any], options: dict[str, Any] | None = None, *, within: float = 20
) -> tuple[dict[str, Any], list[Any], list[dict[str, Any]]]:
    """Run `spec` over a raw socket that acknowledges everything it reads; return `done`,
    the values received (recv or batch) and the `pipeline_error` events."""
    c = await RawSio.connect(url)
    try:
        answer = await c.call("process_msg", spec, options or {"metrics": False}, ack_id=1)
        assert answer["ok"] is True, answer
        values: list[Any] = []
        errors: list[dict[str, Any]] = []
        while True:
            p = await c.next_packet(timeout=within)
            if p.ack_id is not None and p.type == 2:
                await c.send(f"3{p.ack_id}[]")
            if p.type != 2:
                continue
            name, *args = p.data
            if name == "recv":
                values.append(args[0])
            elif name == "results":
                values.extend(i["value"] for i in args[0]["items"])
            elif name == "pipeline_error":
                errors.append(args[0])
            elif name == "done":
                return args[0], values, errors
    finally:
        await c.close()
