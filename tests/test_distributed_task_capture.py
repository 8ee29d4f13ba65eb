"""On a worker too, an item's first step runs as the task that owns the item: an
`asyncio.timeout()` entered before the first await fails that item only (a TimeoutError, an item
error), and the run completes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from natsutil import nats_server

from pipelines import Plumber, Registry
from pipelines.processor import Processor
from pipelines.remote import RemoteConfig, Worker, registry_digest

pytestmark = pytest.mark.timeout(120)

REGISTRY = Registry()


@REGISTRY.source("Test.count")
async def count(self: Processor, output_q: asyncio.Queue[Any], n: int = 6) -> None:
    for i in range(n):
        await output_q.put(i)


@REGISTRY.processor("Test.slow_on_odd")
async def slow_on_odd(self: Processor, q_elt: tuple[Any, ...]) -> int:
    async with asyncio.timeout(0.05):
        if q_elt[0] % 2:
            await asyncio.sleep(60)
        else:
            await asyncio.sleep(0)
    return int(q_elt[0])


@REGISTRY.processor("Test.pass_on")
async def pass_on(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    return q_elt[0]


REGISTRY.freeze()


async def test_a_timeout_entered_in_the_first_step_fails_only_its_item_on_a_worker() -> None:
    async with nats_server() as srv:
        cfg = RemoteConfig(nats_url=srv.url, ack_wait=1.0, live_ttl=2.0,
                           registry_digest=registry_digest(REGISTRY))
        worker = Worker(REGISTRY, "cpu", cfg, name="w0")
        task = asyncio.create_task(worker.run())
        try:
            spec = {"nodes": {"a": {"coro": "Test.count", "args": {"n": 6}},
                              "b": {"coro": "Test.slow_on_odd", "properties": {"pool": "cpu"}},
                              "out": {"coro": "Test.pass_on"}},
                    "graph": {"a": ["b"], "b": ["out"]}}
            p = Plumber(spec, registry=REGISTRY, remote=cfg, collect=True,
                        on_item_error=lambda err: None)
            got = await asyncio.wait_for(_values(p), 60)
            report = await p.wait()
        finally:
            worker.stop()
            await asyncio.wait_for(task, 15)
    assert sorted(got) == [0, 2, 4]
    assert report.status.value == "completed", report.error
    node = report.nodes["b"]
    assert node.errors == 3
    assert {e.error_type for e in node.first_errors} == {"TimeoutError"}


async def _values(p: Plumber) -> list[Any]:
    return [r.value async for r in p.results()]
