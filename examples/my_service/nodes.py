"""A web-app developer's own coroutines, served with one command (see docs/service.md).

    MY_SERVICE_API=http://127.0.0.1:8000 python server.py \\
        --coroutines examples.my_service.nodes:plugin --no-builtin-coroutines

`Shop.fetch` reads one product from the HTTP API at MY_SERVICE_API with an aiohttp.ClientSession
that the service opens at start-up and closes at shutdown (the plugin's lifespan); `Shop.price`
turns the JSON into a small record; `Shop.store` appends each record to a JSON-lines file.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import aiohttp
from pydantic import Field

from pipelines import Processor, Registry
from server.registries import CoroutinePlugin

registry = Registry()
API = os.environ.get("MY_SERVICE_API", "http://127.0.0.1:8000")
STORE = Path(os.environ.get("MY_SERVICE_STORE", "my_service_store.jsonl"))
_http: dict[str, aiohttp.ClientSession] = {}
_store_lock = asyncio.Lock()


@asynccontextmanager
async def http_client() -> AsyncIterator[None]:
    """One HTTP client session for every pipeline, from start-up to shutdown."""
    # No client-side timers: the node's `timeout` property (shop.yaml) bounds each fetch.
    async with aiohttp.ClientSession(API, timeout=aiohttp.ClientTimeout(total=None)) as session:
        _http["api"] = session
        try:
            yield
        finally:
            del _http["api"]


@registry.source("Shop.ids", doc="Emits the product ids first, first+1, ..., up to last.")
async def ids(
    self: Processor, output_q: Any,
    last: Annotated[int, Field(ge=1, le=10_000)], first: Annotated[int, Field(ge=1)] = 1,
) -> None:
    for product_id in range(first, last + 1):
        await output_q.put(product_id)


@registry.processor("Shop.fetch", doc="GETs /products/<id> from the shop API; its JSON.")
async def fetch(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    async with _http["api"].get(f"/products/{int(q_elt[0])}") as response:
        response.raise_for_status()
        return await response.json()


@registry.processor("Shop.price", doc="The product's name and its price with tax, in cents.")
async def price(
    self: Processor, q_elt: tuple[Any, ...], tax_percent: Annotated[float, Field(ge=0, le=100)] = 20,
) -> dict[str, Any]:
    product = q_elt[0]
    return {"name": product["name"], "cents": round(product["price"] * (100 + tax_percent))}


@registry.processor("Shop.store", doc="Appends the record to the JSON-lines store; passes it on.")
async def store(self: Processor, q_elt: tuple[Any, ...]) -> Any:
    line = json.dumps(q_elt[0]) + "\n"
    async with _store_lock:
        await asyncio.to_thread(_append, line)
    return q_elt[0]


def _append(line: str) -> None:
    with STORE.open("a", encoding="utf-8") as f:
        f.write(line)


plugin = CoroutinePlugin(registry, lifespan=http_client)
