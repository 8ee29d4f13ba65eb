"""Helpers of the hostile-client tests: run one attack beside a canary session and a health check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from rawsio import RawSio
from reliability_util import finish_canary, healthz, start_canary

__all__ = ["beside_canary", "raw_run"]


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
