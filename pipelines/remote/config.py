"""How a pipeline reaches its worker pools: the broker address and the JetStream limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RemoteConfig", "POOL_NAME_RE"]

#: A pool name is one NATS subject token and part of a stream name.
POOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class RemoteConfig:
    """Where the broker is and the limits both drivers and workers apply.

    Drivers and workers of one deployment must agree on the stream limits (`edge_cap`,
    `dedup_window`, `max_stream_bytes`, `ack_wait`): whichever starts first creates the streams.

    :param nats_url: the NATS server(s), comma separated.
    :param pools: the pool names a spec may use (None: any).
    :param ack_wait: seconds a worker may hold a message before it is redelivered.
    :param max_deliver: deliveries of one message before its items become `worker_crashed`.
    :param edge_cap: most messages waiting on one edge subject (JetStream enforces it).
    :param max_ack_pending: most messages a pool's workers hold unacknowledged at once.
    :param dedup_window: seconds JetStream remembers message ids (idempotent re-publish).
    :param batch_items: most items per message.
    :param batch_bytes: most payload bytes per message (a larger single item goes alone).
    :param broker_timeout: seconds the broker may be unreachable before a run fails.
    :param live_ttl: seconds a driver's liveness key lives without renewal (then a janitor
        purges its pipeline).
    :param max_stream_bytes: byte cap of each pool stream (-1: none).
    :param registry_digest: the driver's registry hash; workers that announce another are refused.
    :param broker: a `broker.Broker` connection shared by many runs (the service); None: each
        run connects. (Typed loosely: the broker is built from a config, so naming its type
        here would make the two modules import each other.)
    """

    nats_url: str = "nats://127.0.0.1:4222"
    pools: frozenset[str] | None = None
    ack_wait: float = 5.0
    max_deliver: int = 3
    edge_cap: int = 1024
    max_ack_pending: int = 1024
    dedup_window: float = 120.0
    batch_items: int = 64
    batch_bytes: int = 65_536
    broker_timeout: float = 10.0
    live_ttl: float = 15.0
    max_stream_bytes: int = -1
    registry_digest: str | None = None
    broker: Any = field(default=None, compare=False, repr=False)
