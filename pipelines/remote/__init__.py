"""Distributed mode: nodes placed on worker pools, carried over NATS JetStream.

Importing this package does not import `nats`; only a run with pool nodes (or a worker) does.
"""

from __future__ import annotations

from .config import RemoteConfig
from .digest import registry_digest
from .errors import BrokerUnavailable, RegistryMismatch, StreamFull
from .worker import Worker

__all__ = ["RemoteConfig", "Worker", "registry_digest", "BrokerUnavailable", "RegistryMismatch",
           "StreamFull"]
