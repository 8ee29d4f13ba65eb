"""The work budget of one pipeline: items processed across all its nodes.

`max_source_items` bounds what a source emits, not the work: a legal graph of k chained diamonds
(fan-out into two nodes, zipped back) turns each source item into 2**k items at the end. Every
node of a pipeline adds what it takes to one shared meter (once per batch, not per item), and the
node that goes past the limit fails the pipeline with `limit_exceeded`.
"""

from __future__ import annotations

from .errors import LimitExceeded

__all__ = ["WorkMeter"]


class WorkMeter:
    """Items taken by every node of one pipeline, against `limit`."""

    __slots__ = ("items", "limit")

    def __init__(self, limit: int) -> None:
        self.items = 0
        self.limit = limit

    def exceeded(self, node: str) -> LimitExceeded:
        """The error that ends the pipeline, raised by the node that went past the limit."""
        return LimitExceeded(
            f"the pipeline processed more than {self.limit} items across all its nodes "
            f"(limit max_pipeline_items), at node {node!r}", node=node,
        )
