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
    BusyError,
    ClientError,
    ConnectError,
    DisconnectedError,
    GraphFileError,
    NotRunningError,
    PipelineFailedError,
    ProtocolError,
    RateLimitedError,
    RemoteError,
    RequestTimeoutError,
    ServerError,
    SpecValidationError,
)
from .graphs import demo_graph, demo_strings, load_graph, parse_graph
from .run import Run
from .types import DoneReport, PipelineInfo, RegistryEntry, ResultItem, ResultsMode, RunStatus

__all__ = [
    "DEFAULT_URL",
    "AuthError",
    "BusyError",
    "ClientError",
    "ConnectError",
    "DisconnectedError",
    "DoneReport",
    "GraphFileError",
    "NotRunningError",
    "PipelineFailedError",
    "PipelineInfo",
    "PipelinesClient",
    "ProtocolError",
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
    "demo_graph",
    "demo_strings",
    "load_graph",
    "parse_graph",
]
