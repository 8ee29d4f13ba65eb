"""The exceptions of the library: one root, specific subclasses that also inherit a builtin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "PipelineError",
    "SpecError",
    "SpecIssue",
    "RegistryError",
    "NodeFailed",
    "LimitExceeded",
    "ItemTimeout",
    "ItemTooLarge",
    "Stalled",
]


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem found in a graph spec: where (`nodes.coro2.args.n`), a code, and a plain message."""

    path: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


class PipelineError(Exception):
    """Raised for every problem the library reports; the root of its exceptions."""

    code: str = "pipeline_error"

    def __init__(self, message: str, *, node: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.path = path

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: code, message, path, node and (for specs) the list of issues."""
        return {
            "code": self.code,
            "message": self.message,
            "path": self.path,
            "node": self.node,
            "errors": [],
        }


class SpecError(PipelineError, ValueError):
    """Raised when a graph spec is invalid; `issues` lists every problem found, each with a path."""

    code = "invalid_spec"

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = list(issues)
        head = "; ".join(f"{i.path}: {i.message}" for i in self.issues[:5])
        more = f" (and {len(self.issues) - 5} more)" if len(self.issues) > 5 else ""
        n = len(self.issues)
        super().__init__(
            f"invalid graph spec, {n} problem{'s' if n != 1 else ''}: {head}{more}",
            path=self.issues[0].path if self.issues else None,
        )

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["errors"] = [i.to_dict() for i in self.issues]
        return d


class RegistryError(PipelineError, TypeError):
    """Raised when a coroutine cannot be registered (bad signature) or the registry is frozen."""

    code = "registry_error"


class NodeFailed(PipelineError, RuntimeError):
    """Raised when a node with `on_error: fail` (or a source) fails, which stops the pipeline."""

    code = "node_failed"


class LimitExceeded(PipelineError, RuntimeError):
    """Raised when a running pipeline goes past a limit (items per source, for example)."""

    code = "limit_exceeded"


class ItemTimeout(PipelineError, TimeoutError):
    """Raised when one item takes longer than its node's `timeout`."""

    code = "item_timeout"


class ItemTooLarge(PipelineError, ValueError):
    """Raised when a node would pass on (or build) a value over its `max_item_bytes` limit."""

    code = "item_too_large"


class Stalled(PipelineError, RuntimeError):
    """Raised when every node of a running pipeline waits on another and none can move
    (a zip whose inputs drifted apart by more than its queues hold, for example)."""

    code = "stalled"
