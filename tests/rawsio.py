"""A raw Engine.IO 4 / Socket.IO 5 client over aiohttp's websocket, for the reliability tests.

The python-socketio client refuses to send malformed frames, binary where JSON is expected, or to
stop reading its socket; this one sends exactly the text it is given and reads only when asked.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

__all__ = ["RawSio", "Packet", "client_session", "parse_packet"]


def client_session(local: str | None = None) -> aiohttp.ClientSession:
    """An aiohttp session whose connections start from `local` (default: the OS's choice)."""
    if local is None:
        return aiohttp.ClientSession()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local, 0)))


@dataclass
class Packet:
    """One Socket.IO packet inside an Engine.IO message: type, ack id, namespace, data."""

    type: int
    ack_id: int | None = None
    namespace: str = "/"
    data: Any = None
    raw: str = ""


def parse_packet(text: str) -> Packet:
    """Parse a Socket.IO packet (the Engine.IO `4` prefix already removed)."""
    i = 1
    ptype = int(text[0])
    if ptype in (5, 6):  # binary event / ack: "<n>-" attachment count
        while i < len(text) and text[i] != "-":
            i += 1
        i += 1
    namespace = "/"
    if i < len(text) and text[i] == "/":
        j = text.find(",", i)
        namespace, i = (text[i:], len(text)) if j < 0 else (text[i:j], j + 1)
    start = i
    while i < len(text) and text[i].isdigit():
        i += 1
    ack_id = int(text[start:i]) if i > start else None
    data = json.loads(text[i:]) if i < len(text) else None
    return Packet(ptype, ack_id, namespace, data, text)


@dataclass
class RawSio:
    """A websocket speaking Engine.IO 4 by hand; answers pings only while someone reads."""

    ws: aiohttp.ClientWebSocketResponse
    session: aiohttp.ClientSession
    open_payload: dict[str, Any]
    sid: str | None = None
    backlog: list[Packet] = field(default_factory=list)
    closed_by_server: bool = False

    @classmethod
    async def open(
        cls,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        path: str = "/socket.io/",
        local: str | None = None,
    ) -> RawSio:
        """Open the Engine.IO session (not yet the Socket.IO namespace); `local`: the source
        address to connect from (any of 127.0.0.0/8 on Linux, to act as another client)."""
        session = client_session(local)
        try:
            ws = await session.ws_connect(
                f"{base_url}{path}?EIO=4&transport=websocket", headers=headers or {},
                autoping=True, max_msg_size=0,
            )
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.TEXT and msg.data[0] == "0", msg
            return cls(ws, session, json.loads(msg.data[1:]))
        except BaseException:
            await session.close()
            raise

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        auth: dict[str, Any] | None = None,
        namespace: str = "/",
        headers: dict[str, str] | None = None,
        local: str | None = None,
    ) -> RawSio:
        """Open the session and connect the namespace; raise ConnectionError when refused."""
        self = await cls.open(base_url, headers=headers, local=local)
        try:
            ns = "" if namespace == "/" else namespace + ","
            await self.send("0" + ns + (json.dumps(auth) if auth is not None else ""))
            pkt = await self.next_packet(timeout=5)
            if pkt.type == 4:
                raise ConnectionError(f"connect refused: {pkt.data}")
            assert pkt.type == 0, pkt
            self.sid = (pkt.data or {}).get("sid")
            return self
        except BaseException:
            await self.close()
            raise

    async def send(self, socketio_text: str) -> None:
        """Send one Socket.IO packet (the Engine.IO message type `4` is prefixed)."""
        await self.ws.send_str("4" + socketio_text)

    async def send_engineio(self, text: str) -> None:
        """Send a raw Engine.IO message, type digit included."""
        await self.ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def emit(self, event: str, *args: Any, ack_id: int | None = None) -> None:
        payload = json.dumps([event, *args])
        await self.send("2" + ("" if ack_id is None else str(ack_id)) + payload)

    async def next_packet(self, timeout: float = 5.0) -> Packet:  # noqa: ASYNC109
        """The next Socket.IO packet; answers Engine.IO pings on the way."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    self.closed_by_server = True
                    raise ConnectionResetError(f"websocket closed: {msg}")
                if msg.type is aiohttp.WSMsgType.BINARY:
                    continue
                text = msg.data
                if text == "2":
                    await self.ws.send_str("3")
                    continue
                if text.startswith("1"):
                    self.closed_by_server = True
                    raise ConnectionResetError("engine.io close packet")
                if text.startswith("4"):
                    return parse_packet(text[1:])

    async def wait_for(self, pred: Any, timeout: float = 5.0) -> Packet:  # noqa: ASYNC109
        """The first packet (backlog first) for which `pred(packet)` is true."""
        for i, p in enumerate(self.backlog):
            if pred(p):
                return self.backlog.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                p = await self.next_packet(timeout=timeout)
                if pred(p):
                    return p
                self.backlog.append(p)

    async def wait_event(self, name: str, timeout: float = 5.0) -> list[Any]:  # noqa: ASYNC109
        p = await self.wait_for(
            lambda p: p.type == 2 and isinstance(p.data, list) and p.data[:1] == [name], timeout
        )
        return list(p.data[1:])

    async def wait_ack(self, ack_id: int, timeout: float = 5.0) -> list[Any]:  # noqa: ASYNC109
        p = await self.wait_for(lambda p: p.type == 3 and p.ack_id == ack_id, timeout)
        return list(p.data or [])

    async def call(
        self, event: str, *args: Any, ack_id: int = 1, timeout: float = 5.0  # noqa: ASYNC109
    ) -> Any:
        """Emit with an ack id and return the first ack argument."""
        await self.emit(event, *args, ack_id=ack_id)
        answer = await self.wait_ack(ack_id, timeout)
        return answer[0] if answer else None

    def events(self, name: str) -> list[list[Any]]:
        """Events of that name already received and kept in the backlog."""
        return [p.data[1:] for p in self.backlog
                if p.type == 2 and isinstance(p.data, list) and p.data[:1] == [name]]

    async def close(self) -> None:
        try:
            if not self.ws.closed:
                await self.ws.close()
        finally:
            await self.session.close()
