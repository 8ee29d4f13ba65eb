"""Per client address: who the client is, and how much of the server it may hold.

The address is the TCP peer (aiohttp's `request.remote`; engine.io's `REMOTE_ADDR` is always
127.0.0.1 under aiohttp), or, when the peer is a trusted reverse proxy, the client it names in
`X-Forwarded-For`. IPv6 addresses are grouped by /64, the block one host is usually given.

Per address the service counts engine.io connections and sessions (capped), meters handshakes
and the CPU spent decoding its messages and validating its specs (token buckets), and meters the
log lines its bad input may write.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from .ratelimit import BucketTable
from .session import SessionRefused
from .settings import Settings
from .stats import ServerStats

__all__ = ["ADMISSION", "Admission", "client_address"]

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: str, proxies: list[Network]) -> bool:
    ip = _parse(address)
    return ip is not None and any(ip in net for net in proxies)


def client_address(request: web.BaseRequest, proxies: list[Network]) -> str:
    """The client's address: the peer, or (peer is a trusted proxy) the X-Forwarded-For client.

    X-Forwarded-For is read from the right: each trusted proxy appended the address it got the
    request from, so the first untrusted address from the right is the client. Entries left of
    it were written by the client and are ignored. An entry that is not an address stops the
    walk at the last trusted hop.
    """
    address = request.remote or "?"
    if not proxies or not _trusted(address, proxies):
        return _key(address)
    hops = [hop.strip() for line in request.headers.getall("X-Forwarded-For", [])
            for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        if _parse(hop) is None:
            break
        address = hop
        if not _trusted(hop, proxies):
            break
    return _key(address)


def _key(address: str) -> str:
    ip = _parse(address)
    if ip is None:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Admission:
    """Connections, sessions, handshakes, CPU and log lines, per client address."""

    def __init__(self, settings: Settings, stats: ServerStats) -> None:
        self.settings = settings
        self.stats = stats
        self.proxies: list[Network] = [
            ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies
        ]
        self.connections: dict[str, int] = {}
        self.sessions: dict[str, int] = {}
        self._address_of: dict[str, str] = {}  # engine.io sid -> address
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.handshakes = BucketTable(settings.handshakes_per_second, settings.handshake_burst)
        self.cpu = BucketTable(settings.address_cpu_share, settings.address_cpu_burst)
        self.logs = BucketTable(settings.log_lines_per_minute / 60.0, settings.log_burst)
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    def address_of(self, request: web.BaseRequest) -> str:
        """The client address of an HTTP request (see `client_address`)."""
        return client_address(request, self.proxies)

    def address_for(self, eio_sid: str) -> str:
        """The client address of an open engine.io connection ("?" if unknown)."""
        return self._address_of.get(eio_sid, "?")

    # -- connections -----------------------------------------------------------------------
    def check_handshake(self, address: str) -> SessionRefused | None:
        """Whether a new engine.io connection from `address` may start (None) or why not."""
        cap = self.settings.max_connections_per_address
        if self.connections.get(address, 0) >= cap:
            return SessionRefused("too_many_connections",
                                  f"{cap} connections from this address are open")
        if not self.handshakes.get(address).take():
            return SessionRefused("rate_limited",
                                  "too many connection attempts from this address; slow down")
        return None

    def connection_opened(
        self, eio_sid: str, address: str, expire: Callable[[str], None]
    ) -> None:
        """Count the connection; `expire(eio_sid)` runs after `handshake_timeout` seconds."""
        self._address_of[eio_sid] = address
        self.connections[address] = self.connections.get(address, 0) + 1
        loop = asyncio.get_running_loop()
        self._timers[eio_sid] = loop.call_later(self.settings.handshake_timeout, self._expire,
                                                eio_sid, expire)

    def rearm(self, eio_sid: str, expire: Callable[[str], None]) -> None:
        """Start the `handshake_timeout` clock again (the client left the namespace)."""
        if eio_sid not in self._address_of:
            return
        timer = self._timers.pop(eio_sid, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[eio_sid] = loop.call_later(self.settings.handshake_timeout, self._expire,
                                                eio_sid, expire)

    def _expire(self, eio_sid: str, expire: Callable[[str], None]) -> None:
        self._timers.pop(eio_sid, None)
        expire(eio_sid)

    def connection_closed(self, eio_sid: str) -> None:
        """Forget the connection (idempotent)."""
        timer = self._timers.pop(eio_sid, None)
        if timer is not None:
            timer.cancel()
        address = self._address_of.pop(eio_sid, None)
        if address is not None:
            _decrement(self.connections, address)

    # -- sessions --------------------------------------------------------------------------
    def session_opened(self, address: str) -> None:
        """Count a session of `address`; raises SessionRefused past the per-address cap."""
        cap = self.settings.max_sessions_per_address
        if self.sessions.get(address, 0) >= cap:
            raise SessionRefused("too_many_sessions",
                                 f"{cap} sessions from this address are open")
        self.sessions[address] = self.sessions.get(address, 0) + 1

    def session_closed(self, address: str) -> None:
        _decrement(self.sessions, address)

    # -- budgets ---------------------------------------------------------------------------
    @asynccontextmanager
    async def turn(self, address: str) -> AsyncIterator[None]:
        """One expensive operation (a large decode, a validation) of `address` at a time.

        Thirty sessions of one address validating at once would otherwise queue thirty
        validations back to back on the event loop, ahead of everyone else's requests; taking
        turns interleaves them with other work, and each sees the charges of the one before.
        """
        lock, users = self._turns.get(address, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._turns[address] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[address]
            if users <= 1:
                del self._turns[address]
            else:
                self._turns[address] = (lock, users - 1)

    def cpu_ready(self, address: str) -> bool:
        """Whether `address` may make the server decode or validate now."""
        return self.cpu.get(address).ready()

    def cpu_delay(self, address: str) -> float:
        """Seconds until `address` is within its share again (0: it is now)."""
        return self.cpu.get(address).delay()

    def charge(self, address: str, seconds: float) -> None:
        """Charge `seconds` of decoding/validation work to `address`."""
        self.cpu.get(address).charge(seconds)

    def may_log(self, address: str) -> bool:
        """Whether a line about `address`'s bad input may be logged now (else it is counted)."""
        if self.logs.get(address).take():
            return True
        self.stats.log_suppressed.inc()
        return False


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


ADMISSION = web.AppKey("pipelines_admission", Admission)
