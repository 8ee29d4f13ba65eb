"""The engine.io edge: every handshake, frame and message is checked here before it is decoded.

Cheap checks come first, per client address (see `admission`): the handshake rate and the
connection caps before a socket is allocated; the frame's engine.io type and the socket.io
packet type before anything is parsed; the event name (read from the frame's head) and the
address's CPU budget before the JSON is decoded (packets over 32 KB, events, acks or
connects, are decoded in a worker thread, one at a time per address). Then the decode is timed,
in CPU time of the thread (so a descheduled process does not overcharge), and charged to the
address; while an address is over its share, its websockets are not read from at all (TCP
backpressure).

What is refused:

- a binary frame or a binary socket.io packet (the protocol is JSON): the client gets an
  `invalid_payload` error (and a negative ack when the packet asked for one), then the connection
  is closed. Nothing that follows is held for attachments.
- a frame that is not engine.io, or a socket.io packet that does not decode (a malformed ack,
  a CONNECT_ERROR sent by a client, ...): `protocol_error`, then the connection is closed.
- an event frame of an unknown event: cut down to its name before decoding (the handlers
  answer `unknown_event`); an event frame while the address is over its CPU budget: cut down
  to the name OVER_BUDGET_EVENT (the handlers answer `rate_limited`).

Each refusal is counted (`pipelines_malformed_input_total{kind}`) and logged as one line, at
most `log_burst` lines and then `log_lines_per_minute` per client address, never a traceback.
The engine.io and socket.io libraries log through `ThrottledLog`, which drops tracebacks and
rate-limits what is left; so do aiohttp's records of malformed HTTP requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import socketio  # type: ignore[import-untyped]
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from socketio import packet as sio_packet

from pipelines.hosting import Resumed

from .admission import Admission
from .payload import (
    INVALID_EVENT,
    OVER_BUDGET_EVENT,
    CheckedPayload,
    PayloadProblem,
    SafePacket,
    check_payload,
)
from .protocol import error, fail
from .session import SessionManager, SessionRefused, oneline

__all__ = ["EVENTS", "ThrottledLog", "first_step_charged", "install_guard", "library_logger",
           "throttle_http_errors"]

logger = logging.getLogger(__name__)

#: The client events the service knows (anything else is `unknown_event`).
EVENTS = ("process_msg", "cancel", "validate", "registry")
_KNOWN = frozenset(EVENTS) | {INVALID_EVENT}

_EIO_TYPES = frozenset("0123456")
_SIO_TYPES = frozenset("0123")  # CONNECT, DISCONNECT, EVENT, ACK: what a client may send
_SIO_BINARY = frozenset("56")
#: The head of a socket.io EVENT: optional namespace, optional ack id, a plain event name.
_EVENT_HEAD = re.compile(r'2(/[^,"]{0,100},)?(\d{0,15})\["([^"\\\x00-\x1f]{0,100})"[,\]]')
_BINARY_ACK_ID = re.compile(r"[56]\d{1,10}-(?:/[^,]{0,100},)?(\d{1,15})")
#: Longest engine.io frame of a type other than MESSAGE (`2probe`, `3probe`, `5`, ...).
_MAX_CONTROL_FRAME = 16
_ADDRESS = web.RequestKey("pipelines_address", str)
#: Packets longer than this are decoded and shape-checked in a worker thread: a 1 MB frame
#: of small values takes a few hundred ms of pure-Python work, which would stall every session.
THREAD_DECODE_BYTES = 32_768
#: Frames up to this size are decoded even over budget (a `cancel`, a `registry`): cheap, and
#: still under the per-session event rate.
_SMALL_FRAME = 1024
#: Estimated costs charged to an address for work that cannot be timed: reading a frame off
#: the websocket (per byte) and handling an HTTP handshake request.
READ_COST_PER_BYTE = 1e-9
HANDSHAKE_COST = 0.0005


async def first_step_charged(coro: Coroutine[Any, Any, Any],
                             charge: Callable[[float], None]) -> Any:
    """Await `coro`, passing `charge` the CPU seconds of its first step only: a packet's
    decoding and dispatch, up to its first await. While it awaits, this thread runs whatever
    else is ready (other sessions' pipelines; in tests, the client too): not its work."""
    started = time.thread_time()
    try:
        first = coro.send(None)
    except StopIteration as stop:
        return stop.value
    finally:
        charge(time.thread_time() - started)
    return await Resumed(coro, first)


class ThrottledLog(logging.Filter):
    """For the libraries' loggers: one line per record, no traceback, at most `burst` records
    and then `per_minute` a minute (the rest are counted in `suppressed`)."""

    def __init__(self, per_minute: float, burst: int,
                 only: tuple[type[BaseException], ...] = ()) -> None:
        super().__init__()
        self.only = only
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.only and not (record.exc_info and isinstance(record.exc_info[1], self.only)):
            return True  # not a record this filter is about
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < 1:
            self.suppressed += 1
            return False
        self._tokens -= 1
        text = oneline(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {oneline(record.exc_info[1], 200)})"
        record.msg, record.args = text, None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def throttle_http_errors(per_minute: float, burst: int) -> None:
    """aiohttp logs each malformed HTTP request (bad method, bad header) at ERROR with a
    traceback: throttle those records to one line each (once per process)."""
    log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ThrottledLog) for f in log.filters):
        log.addFilter(ThrottledLog(per_minute, burst, only=(HttpProcessingError,)))


def library_logger(name: str, per_minute: float, burst: int) -> logging.Logger:
    """A logger for engine.io / socket.io (`server.wire.<name>`): errors only, throttled."""
    log = logging.getLogger(f"{__name__}.{name}")
    log.setLevel(logging.ERROR)
    if not any(isinstance(f, ThrottledLog) for f in log.filters):
        log.addFilter(ThrottledLog(per_minute, burst))
    return log


class _Guard:
    def __init__(self, sio: socketio.AsyncServer, manager: SessionManager,
                 admission: Admission) -> None:
        self.sio = sio
        self.eio = sio.eio
        self.manager = manager
        self.admission = admission
        self.settings = manager.settings
        self.stats = manager.stats
        self._tasks: set[asyncio.Task[Any]] = set()
        self.websockets: dict[str, Any] = {}  # engine.io sid -> its GuardedWebSocket

    # -- refusals --------------------------------------------------------------------------
    def _log(self, address: str, text: str, *args: Any) -> None:
        if self.admission.may_log(address):
            logger.warning("remote=%s %s", oneline(address, 60), text % args)

    async def refuse(self, eio_sid: str, *, kind: str, code: str, message: str,
                     ack_id: str | None = None, close: bool = True) -> None:
        """Count, log (throttled), tell the client, and (`close`) end its connection."""
        address = self.admission.address_for(eio_sid)
        self.stats.malformed.labels(kind).inc()
        self.stats.connections_closed.labels(kind).inc()
        self._log(address, "%s: %s; connection closed", kind, message)
        err = error(code, message)
        try:
            if ack_id:
                await self.eio.send(eio_sid, f"3{ack_id}" + json.dumps([fail(err)]))
            await self.eio.send(eio_sid, '2["pipeline_error",' + json.dumps(
                err | {"pipeline_id": None, "event": "?", "terminal": False}) + "]")
        except (KeyError, ConnectionError):
            pass  # already gone
        if close:
            task = asyncio.create_task(self._disconnect(eio_sid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _disconnect(self, eio_sid: str) -> None:
        """Close an engine.io connection: the session is torn down first, then what is queued
        is flushed to a websocket (briefly); a long-polling one is dropped at once (nobody may
        come to fetch its queue)."""
        sock = self.eio.sockets.get(eio_sid)
        if sock is None:
            return
        await sock.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)
        if sock.upgraded:
            try:
                await asyncio.wait_for(sock.queue.join(), 2.0)
            except TimeoutError:
                pass
        self.eio.sockets.pop(eio_sid, None)
        ws = self.websockets.pop(eio_sid, None)
        if ws is not None:  # a client that ignores the close packet is cut off too
            await ws.close()

    # -- HTTP: the handshake -----------------------------------------------------------------
    def wrap_request(
        self, handle: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle_request(request: web.Request) -> web.StreamResponse:
            address = self.admission.address_of(request)
            request[_ADDRESS] = address
            if request.method == "GET" and "sid" not in request.query:
                refusal = self.admission.check_handshake(address)
                if refusal is None and not self.admission.cpu_ready(address):
                    refusal = SessionRefused(
                        "rate_limited", "this address used its share of the server's time")
                self.admission.charge(address, HANDSHAKE_COST)
                if refusal is not None:
                    self.stats.connections_refused.labels(refusal.code).inc()
                    self._log(address, "handshake refused: %s", refusal)
                    return web.json_response(fail(error(refusal.code, str(refusal))),
                                             status=429)
            return await handle(request)

        return handle_request

    # -- engine.io events ------------------------------------------------------------------
    def wrap_connect(self, connect: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def on_connect(eio_sid: str, environ: dict[str, Any]) -> Any:
            request = environ.get("aiohttp.request")
            address = "?"
            if request is not None:
                address = request.get(_ADDRESS) or self.admission.address_of(request)
            environ["pipelines.address"] = address
            refused = None
            # The new socket is counted in eio.sockets already.
            if len(self.eio.sockets) > self.settings.max_connections:
                refused = f"{self.settings.max_connections} connections open"
                self.stats.connections_refused.labels("too_many_connections").inc()
            elif self.admission.connections.get(address, 0) >= \
                    self.settings.max_connections_per_address:
                refused = "too many connections from this address"
                self.stats.connections_refused.labels("too_many_connections").inc()
            if refused is not None:
                self._log(address, "connection refused: %s", refused)
                return False
            answer = await connect(eio_sid, environ)
            self.admission.connection_opened(eio_sid, address, self.expire)
            return answer

        return on_connect

    def expire(self, eio_sid: str) -> None:
        """`handshake_timeout` after the handshake: close it unless it joined the namespace."""
        if eio_sid not in self.eio.sockets:
            return
        sid = self.sio.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None and self.manager.get(sid) is not None:
            return
        self.stats.connections_closed.labels("handshake_timeout").inc()
        self._log(self.admission.address_for(eio_sid),
                  "connection closed: no session within %.1f s of the handshake",
                  self.settings.handshake_timeout)
        task = asyncio.create_task(self._disconnect(eio_sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def wrap_disconnect(self, disconnect: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def on_disconnect(eio_sid: str, reason: Any = None) -> None:
            try:
                await disconnect(eio_sid, reason)
            finally:
                self.admission.connection_closed(eio_sid)

        return on_disconnect

    def wrap_message(self, message: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        async def on_message(eio_sid: str, data: Any) -> None:
            if not isinstance(data, str) or data[:1] in _SIO_BINARY:
                ack = _BINARY_ACK_ID.match(data) if isinstance(data, str) else None
                await self.refuse(
                    eio_sid, kind="binary_packet", code="invalid_payload",
                    message="binary packets are not accepted (the protocol is JSON)",
                    ack_id=ack.group(1) if ack else None)
                return
            if data[:1] not in _SIO_TYPES:
                await self.refuse(eio_sid, kind="protocol_error", code="protocol_error",
                                  message="not a socket.io packet a client may send")
                return
            address = self.admission.address_for(eio_sid)
            if data[:1] == "2":
                data = self._cut(address, data)
            if len(data) > THREAD_DECODE_BYTES and data[:1] != "1":
                await self._big_packet(eio_sid, address, data)
                return
            try:
                await first_step_charged(
                    message(eio_sid, data), lambda cpu: self.admission.charge(address, cpu))
            except Exception as exc:  # noqa: BLE001 - the packet, not the server, is at fault
                await self.refuse(eio_sid, kind="protocol_error", code="protocol_error",
                                  message=f"packet could not be decoded ({type(exc).__name__})")
            if data[:1] == "1":  # left the namespace: it must join again, or go
                self.admission.rearm(eio_sid, self.expire)

        return on_message

    async def _big_packet(self, eio_sid: str, address: str, data: str) -> None:
        """Decode and check a large CONNECT, EVENT or ACK off the event loop, then dispatch it
        as socket.io would."""
        async with self.admission.turn(address):
            pkt, seconds = await asyncio.to_thread(self._decode_checked, data)
            self.admission.charge(address, seconds)
        if pkt is None:
            await self.refuse(eio_sid, kind="protocol_error", code="protocol_error",
                              message="packet could not be decoded")
            return
        if pkt.packet_type == sio_packet.EVENT:
            await self.sio._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif pkt.packet_type == sio_packet.ACK:
            await self.sio._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
        else:
            await self.sio._handle_connect(eio_sid, pkt.namespace, pkt.data)

    def _decode_checked(self, data: str) -> tuple[Any, float]:
        """(In a worker thread.) The decoded packet, its top-level object arguments marked as
        checked when they pass `check_payload`, and the thread's CPU seconds spent."""
        started = time.thread_time()
        try:
            pkt = SafePacket(encoded_packet=data)
        except (ValueError, RecursionError):
            return None, time.thread_time() - started
        args: Any = pkt.data
        if isinstance(args, list):
            for i in range(1, len(args)):
                if type(args[i]) is not dict:
                    continue
                try:
                    check_payload(args[i], max_depth=self.settings.max_payload_depth)
                except PayloadProblem:
                    continue  # the handler's own check reports it, with the argument's name
                args[i] = CheckedPayload(args[i])
        return pkt, time.thread_time() - started

    def _cut(self, address: str, data: str) -> str:
        """An event frame, or its head only when decoding it would be wasted or over budget."""
        head = _EVENT_HEAD.match(data)
        if len(data) > _SMALL_FRAME and not self.admission.cpu_ready(address):
            self.stats.errors.labels("over_budget").inc()
            ns, ack = (head.group(1) or "", head.group(2)) if head else ("", "")
            return f"2{ns}{ack}" + json.dumps([OVER_BUDGET_EVENT])
        if head is not None and head.group(3) not in _KNOWN:
            ns, ack, name = head.groups()
            return f"2{ns or ''}{ack}" + json.dumps([name])
        return data

    # -- the websocket ---------------------------------------------------------------------
    def websocket_class(self, base: type) -> type:
        guard = self

        class GuardedWebSocket(base):  # type: ignore[misc]
            """engine.io's aiohttp websocket, refusing frames engine.io would choke on."""

            async def __call__(self, environ: dict[str, Any]) -> Any:
                sid = getattr(getattr(self.handler, "__self__", None), "sid", None)
                if sid is not None:
                    guard.websockets[sid] = self
                try:
                    return await super().__call__(environ)
                finally:
                    if sid is not None and guard.websockets.get(sid) is self:
                        del guard.websockets[sid]

            async def wait(self) -> Any:
                sid = getattr(getattr(self.handler, "__self__", None), "sid", None)
                address = guard.admission.address_for(sid) if sid is not None else "?"
                # An address over its share is not read from until it recovers: its frames
                # wait in its own TCP buffers (backpressure), not in the server's time.
                pause = guard.admission.cpu_delay(address)
                if pause > 0:
                    await asyncio.sleep(pause)
                data = await super().wait()
                if isinstance(data, str | bytes):
                    guard.admission.charge(address, len(data) * READ_COST_PER_BYTE)
                if isinstance(data, str) and data[:1] in _EIO_TYPES and (
                    data[0] == "4" and data[1:2] in _EIO_TYPES
                    or data[0] != "4" and len(data) <= _MAX_CONTROL_FRAME
                ):
                    return data
                if sid is not None:
                    if isinstance(data, str):
                        await guard.refuse(sid, kind="protocol_error", code="protocol_error",
                                           message="not an engine.io packet", close=False)
                    else:
                        await guard.refuse(
                            sid, kind="binary_packet", code="invalid_payload",
                            message="binary frames are not accepted (the protocol is JSON)",
                            close=False)
                return None  # engine.io reads this as "the client closed": it closes cleanly

        return GuardedWebSocket


def install_guard(sio: socketio.AsyncServer, manager: SessionManager,
                  admission: Admission) -> None:
    """Put the checks in front of engine.io. Call before `sio.attach(app)` (the route binds
    `handle_request` then) and after socket.io set its engine.io handlers."""
    guard = _Guard(sio, manager, admission)
    throttle_http_errors(manager.settings.log_lines_per_minute, manager.settings.log_burst)
    eio = sio.eio
    eio.handle_request = guard.wrap_request(eio.handle_request)
    eio._async = dict(eio._async, websocket=guard.websocket_class(eio._async["websocket"]))
    eio.on("connect", guard.wrap_connect(eio.handlers["connect"]))
    eio.on("disconnect", guard.wrap_disconnect(eio.handlers["disconnect"]))
    eio.on("message", guard.wrap_message(eio.handlers["message"]))
