"""The service's side of distributed mode: the broker settings as the engine's RemoteConfig,
one shared broker connection per app, and the workers' counters for `/metrics`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipelines.registry import Registry
from pipelines.remote.broker import Broker
from pipelines.remote.config import RemoteConfig
from pipelines.remote.digest import registry_digest

from .settings import Settings

__all__ = ["remote_config", "RemoteService"]

logger = logging.getLogger(__name__)


def remote_config(settings: Settings, registry: Registry | None = None,
                  broker: Broker | None = None) -> RemoteConfig | None:
    """The engine's remote config for these settings (None: no NATS URL, no pools)."""
    if not settings.nats_url:
        return None
    return RemoteConfig(
        nats_url=settings.nats_url,
        pools=frozenset(settings.pools) if settings.pools else None,
        ack_wait=settings.ack_wait,
        max_deliver=settings.max_deliver,
        edge_cap=settings.edge_cap,
        max_ack_pending=max(settings.edge_cap, 64),
        dedup_window=settings.dedup_window,
        batch_items=settings.remote_batch_items,
        broker_timeout=settings.broker_timeout,
        live_ttl=settings.live_ttl,
        max_stream_bytes=settings.max_stream_bytes,
        registry_digest=registry_digest(registry) if registry is not None else None,
        broker=broker,
    )


class RemoteService:
    """The app's broker connection (opened by the first run with pool nodes) and its config."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        base = remote_config(settings, registry)
        self.broker = Broker(base) if base is not None else None
        self.config = remote_config(settings, registry, self.broker)

    async def close(self) -> None:
        if self.broker is not None:
            await self.broker.close()

    async def worker_metrics(self) -> str:
        """Prometheus lines of the live workers' counters (empty when not connected)."""
        if self.broker is None:
            return ""
        if not self.broker.connected:
            try:  # the first pool run connects; a scrape before it should not wait long
                await asyncio.wait_for(self.broker.connect(), 1.0)
            except Exception as exc:
                logger.debug("worker metrics: %s", exc)
                return ""
        from pipelines.remote.driver import worker_infos

        try:
            infos = await asyncio.wait_for(worker_infos(self.broker), 2.0)
        except Exception as exc:
            logger.debug("worker metrics: %s", exc)
            return ""
        lines: list[str] = []
        for metric, key, text in (
            ("pipelines_worker_items", "items", "Items run by a worker."),
            ("pipelines_worker_messages", "messages", "Messages a worker finished."),
            ("pipelines_worker_errors", "errors", "Item errors on a worker."),
            ("pipelines_worker_crashed", "crashed", "Items turned worker_crashed by a worker."),
            ("pipelines_worker_held", "held", "Messages a worker holds now."),
        ):
            lines.append(f"# HELP {metric} {text}")
            lines.append(f"# TYPE {metric} gauge")
            for info in infos:
                lines.append(f'{metric}{{pool="{_label(info.get("pool"))}",'
                             f'worker="{_label(info.get("name"))}"}} {_num(info.get(key))}')
        return "\n".join(lines) + "\n"


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
