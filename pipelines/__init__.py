"""pipelines: async processing pipelines from a graph spec.

Importing the package has no side effects: no logging set-up, no tasks, no output.
"""

from .channel import Channel
from .compiler import compile_spec
from .errors import (
    ItemTimeout,
    ItemTooLarge,
    LimitExceeded,
    NodeFailed,
    PipelineError,
    RegistryError,
    SpecError,
    SpecIssue,
    Stalled,
)
from .plumber import Plumber
from .processor import DROP, InputProcessor, OutputQueue, Processor
from .registry import CoroInfo, CoroKind, Registry, inspect_coroutine
from .report import ItemError, LogSkippedItems, NodeReport, Result, RunReport, RunStatus
from .spec import (
    DEFAULT_CONCURRENCY,
    DEFAULT_QUEUE_SIZE,
    LIBRARY_LIMITS,
    GraphSpec,
    NodeProperties,
    NodeSpec,
    SpecLimits,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_QUEUE_SIZE",
    "DROP",
    "LIBRARY_LIMITS",
    "Channel",
    "CoroInfo",
    "CoroKind",
    "GraphSpec",
    "InputProcessor",
    "ItemError",
    "LogSkippedItems",
    "ItemTimeout",
    "ItemTooLarge",
    "LimitExceeded",
    "NodeFailed",
    "NodeProperties",
    "NodeReport",
    "NodeSpec",
    "OutputQueue",
    "PipelineError",
    "Plumber",
    "Processor",
    "Registry",
    "RegistryError",
    "Result",
    "RunReport",
    "RunStatus",
    "SpecError",
    "SpecIssue",
    "SpecLimits",
    "Stalled",
    "compile_spec",
    "inspect_coroutine",
]
