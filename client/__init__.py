"""A socket.io client for the pipelines service, and the ``pipelines-client`` scripts.

    from client import PipelinesClient

    async with PipelinesClient("http://localhost:8080") as pc:
        run = await pc.submit("examples/graphs/range.yaml")
        async for item in run:
            print(item.node, item.seq, item.value)
        report = await run.wait()

Depends on python-socketio (and aiohttp, PyYAML, rich), never on the server.
"""

from .connection import DEFAULT_URL, PipelinesClient
from .errors import (
    AuthError,
    BrokerUnavailableError,
    BusyError,
    ClientError,
    ConnectError,
    DisconnectedError,
    GraphFileError,
    ItemTooLargeError,
    LimitExceededError,
    NotRunningError,
    PipelineFailedError,
    ProtocolError,
    ProtocolRefusedError,
    RateLimitedError,
    RemoteError,
    RequestTimeoutError,
    ServerError,
    SpecValidationError,
    WorkerCrashedError,
)
from .graphs import demo_graph, demo_strings, load_graph, parse_graph
from .run import Run
from .types import Announcement, DoneReport, PipelineInfo, RegistryEntry, ResultItem, ResultsMode, RunStatus

__all__ = [
    "DEFAULT_URL",
    "Announcement",
    "AuthError",
    "BrokerUnavailableError",
    "BusyError",
    "ClientError",
    "ConnectError",
    "DisconnectedError",
    "DoneReport",
    "GraphFileError",
    "ItemTooLargeError",
    "LimitExceededError",
    "NotRunningError",
    "PipelineFailedError",
    "PipelineInfo",
    "PipelinesClient",
    "ProtocolError",
    "ProtocolRefusedError",
    "RateLimitedError",
    "RegistryEntry",
    "RemoteError",
    "RequestTimeoutError",
    "ResultItem",
    "ResultsMode",
    "Run",
    "RunStatus",
    "ServerError",
    "SpecValidationError",
    "WorkerCrashedError",
    "demo_graph",
    "demo_strings",
    "load_graph",
    "parse_graph",
]
