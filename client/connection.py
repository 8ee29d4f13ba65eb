"""The pipelines client: one socket.io connection to a pipelines server.

    async with PipelinesClient("http://localhost:8080", token=None) as client:
        run = await client.submit(spec)              # a dict, or a path to a JSON/YAML file
        async for item in run:                       # ResultItem(node, seq, value), in order
            ...
        report = await run.wait()                    # DoneReport(status, elapsed, results, ...)

The protocol is docs/protocol.md. One pipeline runs per connection at a time; closing the
connection cancels it on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import socketio  # type: ignore[import-untyped]
from socketio import exceptions as sio_exceptions

from .errors import (
    AuthError,
    BusyError,
    ClientError,
    ConnectError,
    DisconnectedError,
    ProtocolError,
    RequestTimeoutError,
    SpecValidationError,
    error_from_payload,
)
from .graphs import load_graph
from .run import Run
from .types import Announcement, DoneReport, PipelineInfo, RegistryEntry, ResultsMode

__all__ = ["DEFAULT_URL", "PipelinesClient"]

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://localhost:8080"

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])

# Error codes that answer a request (their ack carries them too), not a run's events.
_REQUEST_CODES = frozenset(
    {
        "invalid_payload",
        "invalid_spec",
        "busy",
        "rate_limited",
        "too_many_sessions",
        "not_running",
        "bad_arguments",
        "unknown_event",
        "not_connected",
        "internal_error",
    }
)

# How many announcements `PipelinesClient.announcements` keeps.
_ANNOUNCEMENTS_KEPT = 100

# Words the server's refusal message uses when the token is the problem.
_AUTH_WORDS = ("token", "auth", "unauthori", "forbidden")


def _guard(handler: _F) -> _F:
    """Keep a socket.io event handler from raising into python-socketio.

    python-socketio runs each incoming event in its own task; an exception there is only
    logged by the event loop. Log it once here, with the event name, and carry on.
    """

    @functools.wraps(handler)
    async def wrapper(*args: Any) -> Any:
        try:
            return await handler(*args)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("error handling socket.io event %s", handler.__name__)
            return None

    return wrapper  # type: ignore[return-value]


def _root_cause(exc: BaseException) -> str:
    """A short reason from an exception chain (socketio hides aiohttp's reason)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused (is the server running on that port?)"
        if isinstance(cur, aiohttp.ClientConnectorDNSError):
            return f"cannot resolve host {cur.host!r}"
        if isinstance(cur, aiohttp.WSServerHandshakeError):
            return f"not a socket.io server? websocket handshake got HTTP {cur.status}"
        cur = cur.__cause__ or cur.__context__
    return str(exc) or type(exc).__name__


def _handshake_status(exc: BaseException) -> int | None:
    """The HTTP status of a refused websocket handshake in an exception chain, else None."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, aiohttp.WSServerHandshakeError):
            return cur.status
        cur = cur.__cause__ or cur.__context__
    return None


class PipelinesClient:
    """A connection to a pipelines server (socket.io, default namespace).

    The constructor does nothing on the network: call :meth:`connect` (or use ``async with``).

    :param url: the server's base URL, e.g. ``http://localhost:8080``.
    :param token: sent as ``auth={"token": ...}`` when the server requires one.
    :param connect_timeout: seconds to establish the connection before giving up.
    :param request_timeout: seconds to wait for the server to answer a request.
    :param transports: engine.io transports, ``("websocket",)`` by default.
    :param done_grace: seconds to wait for stragglers once the server says the run ended.
    :param on_announce: called with each :class:`Announcement` (an operator's broadcast, the
        ``announce`` event) as it arrives; the latest ones are also kept in ``announcements``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        connect_timeout: float = 5.0,
        request_timeout: float = 10.0,
        transports: Sequence[str] = ("websocket",),
        done_grace: float = 5.0,
        on_announce: Callable[[Announcement], None] | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._transports = list(transports)
        self._done_grace = done_grace
        self._sio: socketio.AsyncClient | None = None
        self._http: aiohttp.ClientSession | None = None
        self._run: Run | None = None
        self._requests: set[asyncio.Future[Any]] = set()
        self._retired: deque[str] = deque(maxlen=16)  # ids of this connection's earlier runs
        self._refusal: Any = None
        self._closing = False
        # The server's `protocol_error` just before it closes the connection: what ends the run.
        self._closed_by: ClientError | None = None
        self._on_announce = on_announce
        self.announcements: deque[Announcement] = deque(maxlen=_ANNOUNCEMENTS_KEPT)
        """The latest announcements of this client's connections, oldest first."""

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the socket is connected."""
        return self._sio is not None and bool(self._sio.connected)

    @property
    def run(self) -> Run | None:
        """The latest submitted run (it may have finished)."""
        return self._run

    async def __aenter__(self) -> PipelinesClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect to the server.

        :raises ConnectError: the server is unreachable, refused, or slower than
            ``connect_timeout``.
        :raises AuthError: the server refused the token (or its absence).
        """
        if self.connected:
            return
        if self._sio is not None or self._http is not None:
            await self._teardown()  # what is left of a connection the server dropped
        self._closing = False
        self._refusal = None
        self._closed_by = None
        self._http = aiohttp.ClientSession()
        sio = socketio.AsyncClient(
            reconnection=False,
            handle_sigint=False,
            http_session=self._http,
            request_timeout=self._connect_timeout,
        )
        self._register(sio)
        self._sio = sio
        auth = {"token": self._token} if self._token is not None else None
        try:
            async with asyncio.timeout(self._connect_timeout):
                await sio.connect(
                    self.url,
                    auth=auth,
                    transports=self._transports,
                    wait_timeout=self._connect_timeout,
                )
        except asyncio.CancelledError:
            await self._teardown()
            raise
        except TimeoutError:
            await self._teardown()
            raise ConnectError(
                f"cannot connect to {self.url}: no answer within {self._connect_timeout:g} s"
            ) from None
        except (sio_exceptions.ConnectionError, ValueError, OSError, aiohttp.ClientError) as exc:
            await self._teardown()
            raise self._connect_error(exc) from None

    def _connect_error(self, exc: BaseException) -> ConnectError:
        refusal = self._refusal
        if isinstance(refusal, Mapping):
            refusal = refusal.get("message", refusal)
        if refusal is not None and str(refusal) not in ("", "Connection error"):
            # The server's refusal reads "<code>: <message>" (docs/protocol.md).
            text = str(refusal)
            head, sep, _ = text.partition(": ")
            code = head if sep and head.isidentifier() else None
            message = f"{self.url} refused the connection: {text}"
            if code == "unauthorized" or (code is None and any(word in text.lower() for word in _AUTH_WORDS)):
                return AuthError(message, code or "unauthorized")
            return ConnectError(message, code)
        status = _handshake_status(exc)
        if status == 429:
            # The server's answer (its body names too_many_connections or rate_limited) is not
            # visible through the websocket handshake; the status is.
            return ConnectError(
                f"{self.url} refused the connection: HTTP 429, too many connections or "
                "connection attempts from this address",
                "too_many_connections",
                status,
            )
        return ConnectError(f"cannot connect to {self.url}: {_root_cause(exc)}", status=status)

    async def close(self) -> None:
        """Disconnect (the server cancels a running pipeline) and release everything."""
        self._closing = True
        await self._teardown()

    async def _teardown(self) -> None:
        sio, self._sio = self._sio, None
        if sio is not None:
            try:
                await sio.disconnect()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.debug("error while disconnecting", exc_info=True)
        await self._connection_lost("connection closed by the client")
        http, self._http = self._http, None
        if http is not None and not http.closed:
            await http.close()

    async def _connection_lost(self, reason: str) -> None:
        error = self._closed_by or DisconnectedError(f"disconnected from {self.url}: {reason}")
        for fut in list(self._requests):
            if not fut.done():
                fut.set_exception(error)
        self._requests.clear()
        if self._run is not None and not self._run.finished:
            await self._run._fail(error)

    # -- requests ----------------------------------------------------------------------------

    async def _request(self, event: str, *args: Any) -> Any:
        """Emit ``event`` with ``args`` and return the server's ack (its first argument)."""
        sio = self._sio
        if sio is None or not sio.connected:
            raise DisconnectedError(f"not connected to {self.url}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_ack(*data: Any) -> None:
            if not fut.done():
                fut.set_result(data[0] if data else None)

        self._requests.add(fut)
        data: Any = None if not args else args[0] if len(args) == 1 else tuple(args)
        wait = self._request_timeout
        try:
            try:
                await sio.emit(event, data, callback=on_ack)
            except sio_exceptions.SocketIOError as exc:
                raise DisconnectedError(f"cannot send {event!r} to {self.url}: {exc}") from None
            except (TypeError, ValueError) as exc:
                # Checked on the client: the payload cannot be JSON at all.
                raise SpecValidationError(
                    {"code": "invalid_payload", "message": f"{event!r} payload is not JSON: {exc}"}
                ) from None
            try:
                async with asyncio.timeout(wait):
                    return await fut
            except TimeoutError:
                raise RequestTimeoutError(f"the server did not answer {event!r} within {wait:g} s") from None
        finally:
            self._requests.discard(fut)

    @staticmethod
    def _check_ack(event: str, ack: Any) -> Mapping[str, Any]:
        if not isinstance(ack, Mapping) or "ok" not in ack:
            raise ProtocolError(f"malformed answer to {event!r}: {ack!r:.200}")
        if not ack["ok"]:
            raise error_from_payload(ack.get("error"))
        return ack

    @staticmethod
    def _spec(spec: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
        if isinstance(spec, (str, os.PathLike)):
            return load_graph(spec)
        return dict(spec)

    async def submit(
        self,
        spec: Mapping[str, Any] | str | os.PathLike[str],
        *,
        results: ResultsMode = "batch",
        window: int | None = None,
        metrics: bool = True,
        metrics_interval: float | None = None,
        buffer: int = 1024,
    ) -> Run:
        """Submit a graph spec and start its pipeline; return the :class:`Run` to read.

        :param spec: the graph spec, or the path of a JSON/YAML file holding it.
        :param results: ``"batch"`` (``results`` events of many items, the default) or
            ``"recv"`` (the legacy one event per value).
        :param window: the credit window (results in flight); None keeps the server default.
        :param metrics: ask for ``metrics`` events while the pipeline runs.
        :param metrics_interval: seconds between ``metrics`` events; None: server default.
        :param buffer: results held here, unread, before acknowledgements wait for the reader.
        :raises SpecValidationError: the server rejected the spec (``.issues`` lists why).
        :raises BusyError: a pipeline already runs on this connection.
        :raises GraphFileError: the file cannot be read or parsed.
        """
        body = self._spec(spec)
        if results not in ("batch", "recv"):
            raise ValueError(f"results must be 'batch' or 'recv', not {results!r}")
        current = self._run
        if current is not None and not current.finished:
            raise BusyError(
                {
                    "code": "busy",
                    "message": f"pipeline {current.pipeline_id} still runs on this connection; "
                    "wait for it or cancel it first",
                }
            )
        options: dict[str, Any] = {"results": results, "metrics": metrics}
        if window is not None:
            options["window"] = window
        if metrics_interval is not None:
            options["metrics_interval"] = metrics_interval
        run = Run(
            mode=results,
            buffer=buffer,
            done_grace=self._done_grace,
            cancel_request=self._cancel_request,
        )
        # The run exists before the request: results may overtake the ack.
        if current is not None and current.pipeline_id:
            self._retired.append(current.pipeline_id)
        self._run = run
        try:
            ack = self._check_ack("process_msg", await self._request("process_msg", body, options))
            run._accept(PipelineInfo.from_ack(ack))
        except BaseException as exc:
            if self._run is run:
                self._run = None
            if isinstance(exc, RequestTimeoutError) and self._sio is not None:
                # The server may have started it after all: nobody would read it.
                with contextlib.suppress(sio_exceptions.SocketIOError):
                    await self._sio.emit("cancel", {})
            raise
        return run

    async def _cancel_request(self, pipeline_id: str | None) -> None:
        payload = {"pipeline_id": pipeline_id} if pipeline_id else {}
        self._check_ack("cancel", await self._request("cancel", payload))

    async def cancel(self) -> DoneReport | None:
        """Cancel the latest pipeline, if any, and return its final report."""
        run = self._run
        if run is None:
            return None
        return await run.cancel()

    async def validate(self, spec: Mapping[str, Any] | str | os.PathLike[str]) -> list[str]:
        """Check a spec against the server's registry without running it.

        :returns: the names of the output nodes.
        :raises SpecValidationError: with every problem found (``.issues``).
        """
        ack = self._check_ack("validate", await self._request("validate", self._spec(spec)))
        return [str(o) for o in ack.get("outputs") or []]

    async def registry(self) -> list[RegistryEntry]:
        """The coroutines the server may run: names, kinds, docs and argument schemas."""
        ack = self._check_ack("registry", await self._request("registry"))
        entries = ack.get("coroutines")
        if not isinstance(entries, list):
            raise ProtocolError(f"registry answer without a coroutines list: {ack!r:.200}")
        return [RegistryEntry.from_payload(e) for e in entries if isinstance(e, Mapping)]

    # -- server events -----------------------------------------------------------------------

    def _run_for(self, payload: Any) -> Run | None:
        run = self._run
        if run is None or run._complete:
            return None
        pid = payload.get("pipeline_id") if isinstance(payload, Mapping) else None
        if pid is not None and pid in self._retired:
            return None  # a straggler of an earlier run on this connection
        return run if run._accepts(pid) else None

    def _register(self, sio: socketio.AsyncClient) -> None:
        @_guard
        async def connect_error(data: Any = None) -> None:
            self._refusal = data

        @_guard
        async def disconnect(reason: Any = None) -> None:
            if self._closing:
                await self._connection_lost("connection closed by the client")
                return
            logger.info("disconnected from %s: %s", self.url, reason)
            await self._connection_lost(f"connection lost ({reason})" if reason else "closed")

        @_guard
        async def announce(payload: Any) -> None:
            item = Announcement.from_payload(payload)
            if item is None:
                logger.debug("malformed announce event: %.200r", payload)
                return
            self.announcements.append(item)
            if self._on_announce is not None:
                self._on_announce(item)

        @_guard
        async def pipeline_started(payload: Any) -> None:
            run = self._run_for(payload)
            if run is not None and isinstance(payload, Mapping):
                run._accept(PipelineInfo.from_ack(payload))

        @_guard
        async def results(payload: Any) -> None:
            run = self._run_for(payload)
            if run is None:
                return
            items = payload.get("items") if isinstance(payload, Mapping) else None
            if not isinstance(items, list):
                logger.warning("malformed results event %.200r", payload)
                return
            await run._feed_batch(items)

        @_guard
        async def recv(value: Any = None) -> None:
            run = self._run
            if run is not None and not run._complete:
                await run._feed_value(value)

        @_guard
        async def metrics(payload: Any) -> None:
            run = self._run_for(payload)
            if run is not None and isinstance(payload, Mapping):
                await run._set_metrics(dict(payload))

        @_guard
        async def pipeline_error(payload: Any) -> None:
            if not isinstance(payload, Mapping):
                logger.warning("malformed pipeline_error event %.200r", payload)
                return
            if payload.get("code") == "protocol_error":
                # The server closes the connection next; say why instead of "disconnected".
                self._closed_by = error_from_payload(payload)
            run = self._run_for(payload)
            if run is None or (
                not payload.get("terminal")
                and (payload.get("pipeline_id") is None or payload.get("code") in _REQUEST_CODES)
            ):
                # A failed request is also announced as an event; its ack told the caller.
                logger.debug("server error outside a run: %s", payload.get("code"))
                return
            await run._add_error(dict(payload))

        @_guard
        async def done(payload: Any) -> None:
            run = self._run_for(payload)
            if run is None or not isinstance(payload, Mapping):
                return
            try:
                report = DoneReport.from_payload(payload)
            except (ProtocolError, TypeError, ValueError) as exc:
                await run._fail(
                    exc if isinstance(exc, ClientError) else ProtocolError(f"bad done event: {exc}")
                )
                return
            await run._set_done(report)

        for handler in (
            connect_error,
            disconnect,
            announce,
            pipeline_started,
            results,
            recv,
            metrics,
            pipeline_error,
            done,
        ):
            sio.on(handler.__name__, handler)
