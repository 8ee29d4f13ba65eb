"""One NATS connection and the JetStream objects on it: pool streams, the results stream, the
key-value buckets. `nats` is imported here, lazily: runs without pool nodes never load it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .config import RemoteConfig
from .errors import BrokerUnavailable, StreamFull
from .wire import (
    ATTEMPTS_BUCKET,
    LIVE_BUCKET,
    PIPES_BUCKET,
    RESULTS_STREAM,
    WORKER_CONSUMER,
    WORKERS_BUCKET,
    pool_stream,
)

__all__ = ["Broker", "EDGE_FULL", "is_edge_full", "kv_subject", "raise_if_cancelled"]

logger = logging.getLogger(__name__)

#: JetStream's error code for a publish refused because its subject holds its cap.
EDGE_FULL = 10077
#: Seconds a worker heartbeat lives in the workers bucket without renewal.
WORKER_TTL = 3.0
#: Seconds a count of lone runs of a suspect item is kept (runs purge theirs at the end).
ATTEMPTS_TTL = 3600.0


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was asked to stop. Loops around nats-py calls
    check it: on Python 3.11 `asyncio.wait_for` (which nats-py uses) can swallow a cancellation
    that lands just as its inner call finishes, and a loop would then never end."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def is_edge_full(exc: BaseException) -> bool:
    """A publish refused because its subject holds its cap (wait), not the whole stream."""
    text = str(getattr(exc, "description", "") or "")
    return getattr(exc, "err_code", None) == EDGE_FULL and "per subject" in text


def kv_subject(bucket: str, key: str) -> str:
    return f"$KV.{bucket}.{key}"


class Broker:
    """A NATS connection with JetStream, shared by the runs (or the worker) of one process."""

    def __init__(self, config: RemoteConfig) -> None:
        self.config = config
        self.nc: Any = None
        self.js: Any = None
        self._lock = asyncio.Lock()
        self._ready_pools: set[str] = set()
        self._results_ready = False
        self._kv: dict[str, Any] = {}
        self.down_since: float | None = None

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def connect(self) -> Broker:
        """Connect once (later calls return at once); raise BrokerUnavailable on failure."""
        async with self._lock:
            if self.nc is not None and not self.nc.is_closed:
                return self
            try:
                import nats
            except ImportError:
                raise BrokerUnavailable(
                    "nats-py is not installed: pip install 'pipelines[nats]'") from None

            cfg = self.config

            async def _quiet(exc: Exception) -> None:
                logger.debug("nats: %s", exc)

            async def _down() -> None:
                if self.nc is None or self.nc.is_closed:
                    return  # closed on purpose
                self.down_since = time.monotonic()
                logger.warning("broker connection lost; reconnecting")

            async def _up() -> None:
                self.down_since = None
                logger.info("broker connection back")

            try:
                async with asyncio.timeout(cfg.broker_timeout):
                    self.nc = await nats.connect(
                        servers=[u.strip() for u in cfg.nats_url.split(",") if u.strip()],
                        connect_timeout=min(2.0, cfg.broker_timeout),
                        reconnect_time_wait=0.2,
                        max_reconnect_attempts=-1,
                        allow_reconnect=True,
                        error_cb=_quiet,
                        disconnected_cb=_down,
                        reconnected_cb=_up,
                        ping_interval=5,
                        max_outstanding_pings=2,
                    )
            except (TimeoutError, OSError, Exception) as exc:
                raise BrokerUnavailable(
                    f"cannot reach the broker at {cfg.nats_url}: {type(exc).__name__}: {exc}"
                ) from None
            self.js = self.nc.jetstream(timeout=min(5.0, cfg.broker_timeout))
            return self

    @property
    def max_payload(self) -> int:
        """The largest message the broker takes (bytes), less room for headers."""
        limit = getattr(self.nc, "max_payload", 0) or 1_048_576
        return int(limit) - 1024

    async def close(self) -> None:
        nc, self.nc = self.nc, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), 2.0)
            except Exception as exc:  # closing a broken connection may fail: nothing to keep
                logger.debug("closing nats: %s", exc)

    # -- JetStream objects -------------------------------------------------------------------
    async def _add_stream(self, **cfg: Any) -> None:
        from nats.js.errors import BadRequestError

        try:
            await self.js.add_stream(**cfg)
        except BadRequestError as exc:
            if exc.err_code == 10058:  # name in use with another config: take the new one
                await self.js.update_stream(**cfg)
            elif exc.err_code == 10065:  # another process created it at the same moment
                await self.js.stream_info(cfg["name"])
            else:
                raise

    async def ensure_pool(self, pool: str) -> None:
        """The work-queue stream of `pool` and its workers' pull consumer."""
        if pool in self._ready_pools:
            return
        from nats.js.api import (
            AckPolicy,
            ConsumerConfig,
            DiscardPolicy,
            RetentionPolicy,
            StorageType,
        )

        cfg = self.config
        await self._add_stream(
            name=pool_stream(pool), subjects=[f"pl.{pool}.>"],
            retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
            discard=DiscardPolicy.NEW, discard_new_per_subject=True,
            max_msgs_per_subject=cfg.edge_cap, duplicate_window=cfg.dedup_window,
            max_bytes=cfg.max_stream_bytes,
        )
        ccfg = ConsumerConfig(
            durable_name=WORKER_CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=cfg.ack_wait,
            max_ack_pending=cfg.max_ack_pending, max_waiting=512,
        )
        try:
            await self.js.add_consumer(pool_stream(pool), ccfg)
        except Exception as exc:  # an existing consumer with other limits: keep it, say so
            logger.warning("pool %s: keeping the existing worker consumer (%s)", pool, exc)
        self._ready_pools.add(pool)

    async def ensure_results(self) -> None:
        """The stream results travel back on, one subject per (pipeline, node)."""
        if self._results_ready:
            return
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType

        cfg = self.config
        await self._add_stream(
            name=RESULTS_STREAM, subjects=["plr.>"], retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE, discard=DiscardPolicy.NEW, discard_new_per_subject=True,
            max_msgs_per_subject=max(cfg.edge_cap, 4 * cfg.max_ack_pending),
            duplicate_window=cfg.dedup_window,
        )
        self._results_ready = True

    async def kv(self, bucket: str) -> Any:
        """The key-value bucket `bucket` (created on first use)."""
        kv = self._kv.get(bucket)
        if kv is not None:
            return kv
        from nats.js.api import StorageType

        ttl = {LIVE_BUCKET: self.config.live_ttl, WORKERS_BUCKET: WORKER_TTL,
               ATTEMPTS_BUCKET: ATTEMPTS_TTL}.get(bucket)
        try:
            kv = await self.js.key_value(bucket)
        except Exception:
            try:
                kv = await self.js.create_key_value(bucket=bucket, ttl=ttl, history=1,
                                                    storage=StorageType.FILE)
            except Exception:  # another process created it at the same moment
                kv = await self.js.key_value(bucket)
        self._kv[bucket] = kv
        return kv

    async def purge(self, stream: str, subject: str) -> None:
        from nats.js.errors import NotFoundError

        try:
            await self.js.purge_stream(stream, subject=subject)
        except NotFoundError:
            pass

    async def purge_pipeline(self, pid: str, pools: list[str]) -> None:
        """Remove every message, subject, consumer and key of pipeline `pid`."""
        from nats.js.errors import NotFoundError

        await self.purge(f"KV_{LIVE_BUCKET}", f"$KV.{LIVE_BUCKET}.{pid}")
        for pool in pools:
            await self.purge(pool_stream(pool), f"pl.{pool}.{pid}.>")
        try:
            await self.js.delete_consumer(RESULTS_STREAM, f"plr_{pid}")
        except NotFoundError:
            pass
        await self.purge(RESULTS_STREAM, f"plr.{pid}.>")
        await self.purge(f"KV_{ATTEMPTS_BUCKET}", f"$KV.{ATTEMPTS_BUCKET}.{pid}.>")
        await self.purge(f"KV_{PIPES_BUCKET}", f"$KV.{PIPES_BUCKET}.{pid}")

    async def subjects(self, stream: str, pattern: str) -> dict[str, int]:
        """Subjects of `stream` matching `pattern` that hold messages, with their counts."""
        from nats.js.errors import NotFoundError

        try:
            info = await self.js.stream_info(stream, subjects_filter=pattern)
        except NotFoundError:
            return {}
        return dict(info.state.subjects or {})

    async def publish(self, subject: str, data: bytes, msg_id: str,
                      headers: dict[str, str] | None = None,
                      on_wait: Any = None, wait_for_room: bool = True) -> bool:
        """Publish until JetStream has stored the message: wait while the edge is full (or
        return False at once, with `wait_for_room` false), retry while the broker is away
        (BrokerUnavailable after `broker_timeout`); StreamFull for a refusal that waiting
        cannot cure."""
        from nats.errors import MaxPayloadError
        from nats.js.errors import APIError

        hdrs = {"Nats-Msg-Id": msg_id}
        if headers:
            hdrs.update(headers)
        delay = 0.002
        down: float | None = None
        while True:
            raise_if_cancelled()
            try:
                await self.js.publish(subject, data, headers=hdrs)
                return True
            except APIError as exc:
                text = str(exc.description or "")
                if is_edge_full(exc):
                    if not wait_for_room:
                        return False
                    down = None
                elif exc.code == 503 and "exceeded" not in text and "too large" not in text:
                    down = down or time.monotonic()
                else:
                    raise StreamFull(f"the broker refused a message on {subject}: "
                                     f"{exc.description} (code {exc.err_code})") from None
            except asyncio.CancelledError:
                raise
            except MaxPayloadError:
                raise StreamFull(f"a message on {subject} is larger than the broker takes "
                                 f"({len(data)} bytes)") from None
            except Exception as exc:  # timeouts, no responders, connection closed
                down = down or time.monotonic()
                logger.debug("publish on %s: %s", subject, exc)
            if down is not None and time.monotonic() - down > self.config.broker_timeout:
                raise BrokerUnavailable(
                    f"the broker at {self.config.nats_url} did not store a message for "
                    f"{self.config.broker_timeout} s")
            if on_wait is not None:
                await on_wait()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
