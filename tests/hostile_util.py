"""Helpers of the hostile-client tests: attacker addresses, metrics, long-polling handshakes."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp

__all__ = ["ATTACKER", "OTHER", "metric", "polling_handshake", "polling_post"]

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
