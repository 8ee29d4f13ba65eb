"""Which nodes may run on a worker pool, checked before anything runs."""

from __future__ import annotations

from collections.abc import Collection

from ..errors import SpecIssue
from ..spec import GraphSpec, Topology
from .config import POOL_NAME_RE

__all__ = ["pool_nodes", "check_placement"]


def pool_nodes(spec: GraphSpec) -> dict[str, str]:
    """Node name -> pool, for the nodes that ask for one."""
    return {n: node.properties.pool for n, node in spec.nodes.items()
            if node.properties.pool is not None}


def check_placement(spec: GraphSpec, topo: Topology, pools: Collection[str] | None,
                    configured: bool) -> list[SpecIssue]:
    """Issues of nodes placed on pools: sources, zips and outputs stay on the driver; the pool
    must be one the driver accepts (`pools`; None: any) and a broker must be configured."""
    issues = []
    for name, pool in pool_nodes(spec).items():
        path = f"nodes.{name}.properties.pool"
        node = spec.nodes[name]
        if not POOL_NAME_RE.match(pool):
            issues.append(SpecIssue(path, "invalid_value",
                                    f"node {name!r}: pool names are 1-32 letters, digits, _ or -"))
            continue
        where = None
        if name in topo.inputs:
            where = "a source node"
        elif name in topo.outputs:
            where = "an output node"
        elif len(topo.upstream[name]) > 1 and node.properties.aggregate_inputs:
            where = "a zip node (aggregate_inputs with several inputs)"
        elif not isinstance(node.coro, str):
            where = "a node whose coro is not a registry name"
        if where is not None:
            issues.append(SpecIssue(path, "placement_unsupported",
                                    f"node {name!r} is {where}: it runs on the driver and "
                                    f"cannot be placed on pool {pool!r}"))
            continue
        if not configured:
            issues.append(SpecIssue(path, "unknown_pool",
                                    f"node {name!r} asks for pool {pool!r}, but no broker is "
                                    "configured (set a NATS URL)"))
        elif pools is not None and pool not in pools:
            known = ", ".join(sorted(pools)) or "none"
            issues.append(SpecIssue(path, "unknown_pool",
                                    f"node {name!r} asks for pool {pool!r}; known pools: {known}"))
    return issues
