"""What a finished run reports: status, elapsed time, per-node counts, the error that stopped it."""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import PipelineError

__all__ = ["RunStatus", "ItemError", "LogSkippedItems", "NodeReport", "RunReport", "Result"]

logger = logging.getLogger(__name__)


class RunStatus(enum.StrEnum):
    """Where a pipeline is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.FAILED)


class Result(NamedTuple):
    """One value from an output node; `seq` counts the pipeline's results from 0, without gaps."""

    node: str
    seq: int
    value: Any


@dataclass(frozen=True, slots=True)
class ItemError:
    """One item that failed in one node (reported, and skipped unless the node fails)."""

    node: str
    item: str  # repr, truncated
    error_type: str
    message: str
    code: str = "node_error"  # or a more specific code: item_too_large

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "item": self.item, "error_type": self.error_type,
                "message": self.message}


class LogSkippedItems:
    """The default ``on_item_error``: log each skipped item as a warning, rate-limited.

    At most one line per node every `interval` seconds; the next line says how many items of that
    node were skipped in between. Every skipped item is still counted in the report.
    """

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def __call__(self, err: ItemError) -> None:
        now = time.monotonic()
        last = self._last.get(err.node)
        if last is not None and now - last < self.interval:
            self._quiet[err.node] = self._quiet.get(err.node, 0) + 1
            return
        self._last[err.node] = now
        quiet = self._quiet.pop(err.node, 0)
        logger.warning(
            "node %r skipped item %s: %s: %s%s", err.node, err.item, err.error_type, err.message,
            f" (and {quiet} more skipped since the last such line)" if quiet else "",
        )


@dataclass(slots=True)
class NodeReport:
    """Counts for one node at the end of a run."""

    name: str
    items_in: int
    items_out: int
    errors: int
    retries: int
    dropped: int
    unpaired: int
    status: str
    first_errors: list[ItemError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"in": self.items_in, "out": self.items_out, "errors": self.errors,
                "retries": self.retries, "dropped": self.dropped, "unpaired": self.unpaired,
                "status": self.status, "first_errors": [e.to_dict() for e in self.first_errors]}


@dataclass(slots=True)
class RunReport:
    """The outcome of one run."""

    status: RunStatus
    elapsed: float
    results: int
    nodes: dict[str, NodeReport]
    error: PipelineError | None = None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.COMPLETED

    def raise_for_status(self) -> None:
        """Raise the error that stopped the run, if it failed."""
        if self.error is not None:
            raise self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "elapsed": round(self.elapsed, 6),
            "results": self.results,
            "nodes": {n: r.to_dict() for n, r in self.nodes.items()},
            "error": self.error.to_dict() if self.error is not None else None,
        }
