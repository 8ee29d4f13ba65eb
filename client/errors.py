"""Every error the client raises: one root, specific subclasses that also inherit a builtin.

Catch :class:`ClientError` for "anything went wrong talking to pipelines", or the builtin a
subclass shares (``ConnectionError``, ``ValueError``, ``TimeoutError``, ...) in generic code.
Errors the server reports carry its error object (see docs/protocol.md) as ``.error`` and
its fields as attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AuthError",
    "BrokerUnavailableError",
    "BusyError",
    "ClientError",
    "ConnectError",
    "DisconnectedError",
    "GraphFileError",
    "ItemTooLargeError",
    "LimitExceededError",
    "NotRunningError",
    "PipelineFailedError",
    "ProtocolError",
    "ProtocolRefusedError",
    "RateLimitedError",
    "RemoteError",
    "RequestTimeoutError",
    "ServerError",
    "SpecValidationError",
    "WorkerCrashedError",
    "error_from_payload",
    "failure_from_payload",
    "format_error",
    "one_line",
]


class ClientError(Exception):
    """Root of every error raised by the pipelines client."""


class ConnectError(ClientError, ConnectionError):
    """Raised when the client cannot connect: server unreachable, refused or too slow.

    ``code`` is the server's reason when it refused the connection (``unauthorized``,
    ``too_many_sessions``, ``shutdown``; ``too_many_connections`` when the handshake got HTTP
    429: too many connections or connection attempts from this address), else None.
    ``status`` is the HTTP status of a refused handshake, else None.
    """

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class AuthError(ConnectError, PermissionError):
    """Raised when the server refuses the connection because the token is missing or wrong."""


class DisconnectedError(ClientError, ConnectionError):
    """Raised when the connection drops while a request or a pipeline is in flight.

    The server cancels a session's pipeline when its socket goes away, so the run is over.
    """


class RequestTimeoutError(ClientError, TimeoutError):
    """Raised when the server does not answer a request (or end a run) in time."""


class ProtocolError(ClientError, RuntimeError):
    """Raised when the server's messages break the protocol (malformed answer, missing results)."""


class GraphFileError(ClientError, ValueError):
    """Raised when a graph file cannot be read or parsed, or does not hold a graph object."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class RemoteError(ClientError):
    """Base of the errors the server reports with an error object.

    :param error: the server's error object ``{"code", "message", "path", "node", "errors"}``.
    """

    def __init__(self, error: Mapping[str, Any]) -> None:
        self.error: dict[str, Any] = dict(error)
        self.code: str = str(self.error.get("code") or "error")
        self.message: str = str(self.error.get("message") or self.code)
        path = self.error.get("path")
        node = self.error.get("node")
        self.path: str | None = None if path is None else str(path)
        self.node: str | None = None if node is None else str(node)
        raw_issues = self.error.get("errors")
        self.issues: list[dict[str, Any]] = (
            [dict(i) for i in raw_issues if isinstance(i, Mapping)] if isinstance(raw_issues, list) else []
        )
        super().__init__(format_error(self.error))


class ServerError(RemoteError, RuntimeError):
    """Raised when the server answers a request with an error no more specific class covers."""


class SpecValidationError(RemoteError, ValueError):
    """Raised when the server rejects a graph spec or a payload (codes ``invalid_spec``,
    ``invalid_payload``, ``bad_arguments``); ``.issues`` lists every problem with its path."""


class BusyError(RemoteError, RuntimeError):
    """Raised when a pipeline already runs in this session (code ``busy``)."""


class RateLimitedError(RemoteError, RuntimeError):
    """Raised when the server refuses a request for load reasons (``rate_limited``,
    ``too_many_sessions``, ``too_many_connections``)."""


class ProtocolRefusedError(RemoteError, ProtocolError):
    """Raised when the server reports that this client broke the protocol (code
    ``protocol_error``: a frame that is not engine.io, a packet that does not decode); the server
    closes the connection after it."""


class NotRunningError(RemoteError, LookupError):
    """Raised when there is no running pipeline to act on (code ``not_running``)."""


class PipelineFailedError(RemoteError, RuntimeError):
    """Raised when a pipeline ends with status ``failed`` (``node_failed``, ``client_stalled``,
    ``budget_exceeded``, ``shutdown``, ...). ``.report`` holds the final report when known."""

    def __init__(self, error: Mapping[str, Any], report: Any = None) -> None:
        super().__init__(error)
        self.report = report


class BrokerUnavailableError(PipelineFailedError, ConnectionError):
    """The run failed because the server lost its NATS broker for longer than its
    ``broker_timeout`` (code ``broker_unavailable``; only runs with pool nodes)."""


class WorkerCrashedError(PipelineFailedError):
    """The run failed on an item that killed its pool worker ``max_deliver`` times (code
    ``worker_crashed``; with ``on_error: skip`` it is only an item error in ``Run.errors``)."""


class ItemTooLargeError(PipelineFailedError, ValueError):
    """The run failed on a value over the server's ``max_item_bytes`` (code ``item_too_large``;
    with ``on_error: skip`` it is only an item error in ``Run.errors``)."""


class LimitExceededError(PipelineFailedError):
    """The run went past a server limit (code ``limit_exceeded``: ``max_source_items``,
    ``max_pipeline_items`` or ``max_session_bytes``; the message names it)."""


_FAILED_BY_CODE: dict[str, type[PipelineFailedError]] = {
    "broker_unavailable": BrokerUnavailableError,
    "worker_crashed": WorkerCrashedError,
    "item_too_large": ItemTooLargeError,
    "limit_exceeded": LimitExceededError,
}


def failure_from_payload(error: Mapping[str, Any], report: Any = None) -> PipelineFailedError:
    """The fitting :class:`PipelineFailedError` subclass for a failed run's error object."""
    cls = _FAILED_BY_CODE.get(str(error.get("code")), PipelineFailedError)
    return cls(error, report=report)


_BY_CODE: dict[str, type[RemoteError]] = {
    "invalid_spec": SpecValidationError,
    "invalid_payload": SpecValidationError,
    "bad_arguments": SpecValidationError,
    "busy": BusyError,
    "rate_limited": RateLimitedError,
    "too_many_sessions": RateLimitedError,
    "too_many_connections": RateLimitedError,
    "not_running": NotRunningError,
    "protocol_error": ProtocolRefusedError,
    # A spec that places a node where it cannot run is refused as a whole ("invalid_spec" with
    # the issue); the code alone, at the top, is a spec error too.
    "placement_unsupported": SpecValidationError,
    **_FAILED_BY_CODE,
}


def error_from_payload(error: Any) -> RemoteError:
    """Build the fitting :class:`RemoteError` subclass from a server error object."""
    if not isinstance(error, Mapping):
        error = {"code": "error", "message": f"server sent a malformed error: {error!r:.200}"}
    cls = _BY_CODE.get(str(error.get("code")), ServerError)
    return cls(error)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {0x0A: "\\n", 0x0D: "\\r"}


def one_line(value: Any, limit: int = 500) -> str:
    """Render a server-supplied string on one bounded line, control characters escaped."""
    text = str(value)[: limit * 2].translate(_CONTROL)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_error(error: Mapping[str, Any], *, indent: str = "  ") -> str:
    """Render an error object as plain text: ``code: path: message`` then one line per issue."""
    code = one_line(error.get("code") or "error", 80)
    where = error.get("path") or (f"nodes.{error['node']}" if error.get("node") else None)
    issues = [i for i in error.get("errors") or [] if isinstance(i, Mapping)]
    if issues:
        # The server's message repeats every issue on one line; the list below is clearer.
        count = len(issues)
        head = f"{code}: {count} problem{'s' if count != 1 else ''}"
    else:
        head = f"{code}: "
        if where:
            head += f"{one_line(where, 200)}: "
        head += one_line(error.get("message") or "")
    lines = [head]
    if issues:
        for issue in issues:
            path = one_line(issue.get("path") or "(spec)", 200)
            lines.append(
                f"{indent}{path}: {one_line(issue.get('code') or 'error', 80)}: "
                f"{one_line(issue.get('message') or '')}"
            )
    return "\n".join(lines)
