"""The errors of distributed runs: the broker is gone, or a worker runs another registry."""

from __future__ import annotations

from ..errors import PipelineError

__all__ = ["BrokerUnavailable", "RegistryMismatch", "StreamFull"]


class BrokerUnavailable(PipelineError, ConnectionError):
    """Raised when the NATS broker cannot be reached for longer than the broker timeout."""

    code = "broker_unavailable"


class RegistryMismatch(PipelineError, RuntimeError):
    """Raised when a worker of a pool runs a registry that differs from the driver's."""

    code = "registry_mismatch"


class StreamFull(PipelineError, RuntimeError):
    """Raised when JetStream refuses a message for a reason other than a full edge (the
    stream's byte cap, the largest message size): the run fails rather than lose it."""

    code = "stream_full"
