"""Same results with and without worker pools, on seeded random graphs: chains, fan-out, merges,
zips on the driver, ordered and unordered nodes, DROP filters and skipped errors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from natsutil import nats_server

from pipelines import Plumber
from pipelines.remote import RemoteConfig, Worker, registry_digest
from server.coroutines import build_registry

pytestmark = pytest.mark.timeout(180)

REGISTRY = build_registry(demo_sleep_scale=0.01, test_coroutines=True)


def random_graph(seed: int) -> tuple[dict[str, Any], list[str]]:
    """A random spec and the nodes that may go on a pool (per-item nodes, not zips/outputs)."""
    rng = random.Random(seed)
    n_items = rng.randint(20, 150)
    nodes: dict[str, Any] = {"src": {"coro": "Source.range", "args": {"stop": n_items}}}
    graph: dict[str, list[str]] = {"src": []}
    exact = {"src"}  # nodes whose output is every item, in a fixed order
    movable: list[str] = []
    for i in range(rng.randint(2, 7)):
        name = f"n{i}"
        kind = rng.choice(["map", "map", "filter", "fail", "merge", "zip"])
        ordered = rng.random() < 0.6
        props: dict[str, Any] = {"ordered": ordered, "concurrency": rng.choice([1, 4, 64])}
        ups = [rng.choice(list(graph))]
        if kind == "map":
            coro, args = rng.choice([("Number.add", {"n": rng.randint(1, 9)}),
                                     ("Number.multiply", {"factor": rng.randint(2, 5)})])
        elif kind == "filter":
            coro, args = "Filter.compare", {"op": rng.choice(["lt", "gt", "ne"]),
                                            "value": rng.randint(0, 60)}
        elif kind == "fail":
            coro, args = "Test.fail_when", {"value": rng.randint(0, 30)}
        elif kind == "merge" and len(graph) >= 2:
            coro, args = "Flow.identity", {}
            ups = rng.sample(list(graph), 2)
            props["aggregate_inputs"] = False
        elif kind == "zip" and len(exact) >= 2:
            coro, args = "Number.sum", {}
            ups = rng.sample(sorted(exact), 2)
        else:
            coro, args = "Number.add", {"n": 1}
        nodes[name] = {"coro": coro, "args": args, "properties": props}
        graph[name] = []
        for u in ups:
            graph[u].append(name)
        if coro == "Number.sum":
            exact.add(name)
        else:
            movable.append(name)
            if coro in ("Number.add", "Number.multiply") and ordered and ups[0] in exact:
                exact.add(name)
    leaves = [n for n, d in graph.items() if not d]
    nodes["out"] = {"coro": "Flow.identity", "properties": {"aggregate_inputs": False}}
    graph["out"] = []
    for leaf in leaves:
        graph[leaf].append("out")
    return {"nodes": nodes, "graph": {k: v or None for k, v in graph.items()}}, movable


def placed(spec: dict[str, Any], names: list[str]) -> dict[str, Any]:
    out = {"nodes": {k: dict(v) for k, v in spec["nodes"].items()}, "graph": spec["graph"]}
    for n in names:
        out["nodes"][n]["properties"] = dict(out["nodes"][n]["properties"], pool="cpu")
    return out


async def run(spec: dict[str, Any],
              remote: RemoteConfig | None) -> tuple[list[Any], Any, dict[str, Any]]:
    p = Plumber(spec, registry=REGISTRY, remote=remote, collect=True)
    values = [r.value async for r in p.results()]
    report = await p.wait()
    return values, report, p.metrics()["nodes"]


@pytest.fixture
async def pool() -> AsyncIterator[RemoteConfig]:
    async with nats_server() as srv:
        cfg = RemoteConfig(nats_url=srv.url, ack_wait=1.0, live_ttl=2.0,
                           registry_digest=registry_digest(REGISTRY))
        workers = [Worker(REGISTRY, "cpu", cfg, name=f"w{i}") for i in range(2)]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            yield cfg
        finally:
            for w in workers:
                w.stop()
            await asyncio.wait_for(asyncio.gather(*tasks), 15)


async def test_random_graphs_same_results_both_ways(pool: RemoteConfig) -> None:
    for seed in range(12):
        spec, movable = random_graph(seed)
        rng = random.Random(1000 + seed)
        on_pool = [n for n in movable if rng.random() < 0.7] or movable[:1]
        local, local_report, _ = await run(spec, None)
        remote, remote_report, metrics = await run(placed(spec, on_pool), pool)
        assert remote_report.status.value == "completed", (seed, remote_report.error)
        assert sorted(remote, key=repr) == sorted(local, key=repr), (seed, spec, on_pool)
        for name, node in local_report.nodes.items():
            other = remote_report.nodes[name]
            assert (other.items_in, other.items_out, other.errors, other.dropped) == (
                node.items_in, node.items_out, node.errors, node.dropped), (seed, name, spec)
        for name in on_pool:  # the pool nodes did run on the workers
            m = metrics[name]
            assert m["pool"] == "cpu"
            assert sum(m["per_worker"].values()) == m["in"], (seed, name, m)
