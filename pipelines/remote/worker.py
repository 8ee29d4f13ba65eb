"""A worker of a pool: fetches batch messages, runs their items through the node's coroutine
(the engine's own Processor, so retries, timeouts and DROP behave as in-process), publishes
the results and acks the input only once every result is stored."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import PipelineError
from ..hosting import start_eagerly
from ..items import DROP
from ..processor import Processor
from ..registry import Registry
from ..spec import NodeProperties
from .broker import Broker, raise_if_cancelled
from .config import POOL_NAME_RE, RemoteConfig
from .digest import registry_digest
from .faults import Faults
from .wire import (
    ATTEMPTS_BUCKET,
    HDR_MSG_ID,
    HDR_WORKER,
    LIVE_BUCKET,
    PIPES_BUCKET,
    RESULTS_STREAM,
    WORKER_CONSUMER,
    WORKERS_BUCKET,
    encode,
    encode_batches,
    error_entry,
    parse_pool_subject,
    pool_stream,
    results_subject,
    split_subject,
    too_large,
)

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

#: Seconds between liveness checks of the pipelines a worker holds items of.
LIVENESS_INTERVAL = 0.25
#: Seconds between janitor sweeps (purging what dead drivers left in the broker).
JANITOR_INTERVAL = 0.5
#: Seconds between heartbeats in the workers bucket.
HEARTBEAT_INTERVAL = 1.0
#: Seconds a dead pipeline id is remembered (its late messages are dropped at once).
DEAD_MEMORY = 300.0


@dataclass
class _Run:
    """What a worker knows of one pipeline: its pool nodes, built once."""

    pid: str
    nodes: dict[int, Processor]
    sems: dict[int, asyncio.Semaphore]
    mismatch: str | None = None
    dead: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64] or "worker"


class Worker:
    """Runs the nodes placed on `pool`, items from any pipeline of any server.

    :param registry: the coroutines it may run; must be the servers' (its hash is announced).
    :param pool: the pool it serves.
    :param config: broker address and limits (shared with the servers).
    :param name: how it shows in metrics (default: host and process id).
    :param concurrency: messages held at once.
    """

    def __init__(self, registry: Registry, pool: str, config: RemoteConfig, *,
                 name: str | None = None, concurrency: int = 64) -> None:
        if not POOL_NAME_RE.match(pool):
            raise ValueError(f"invalid pool name {pool!r}: 1-32 letters, digits, _ or -")
        self.registry = registry
        self.digest = registry_digest(registry)
        self.pool = pool
        self.config = config
        self.name = _safe_name(name or f"{socket.gethostname()}-{os.getpid()}")
        self.concurrency = max(1, concurrency)
        self.faults = Faults.from_env()
        self.broker = Broker(config)
        self.stats = {"messages": 0, "items": 0, "errors": 0, "crashed": 0, "redelivered": 0}
        self._runs: dict[str, _Run] = {}
        self._dead: dict[str, float] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._published = 0
        self._kv: dict[str, Any] = {}
        self._starved = 0  # items waiting for their node's concurrency on this worker
        self._gate = asyncio.Condition()
        self._normal = 0
        self._suspects = 0
        self._alone = False

    def stop(self) -> None:
        """Stop fetching; held messages are finished (or nak'ed after ack_wait)."""
        self._stopping.set()

    async def run(self) -> None:
        """Serve until `stop()`; raise BrokerUnavailable if the broker cannot be reached."""
        b = await self.broker.connect()
        try:
            await b.ensure_pool(self.pool)
            await b.ensure_results()
            for bucket in (LIVE_BUCKET, PIPES_BUCKET, WORKERS_BUCKET, ATTEMPTS_BUCKET):
                self._kv[bucket] = await b.kv(bucket)
            psub = await b.js.pull_subscribe(f"pl.{self.pool}.>", durable=WORKER_CONSUMER,
                                             stream=pool_stream(self.pool))
            await self._beat()
            logger.info("worker %s serves pool %s (registry %s)", self.name, self.pool,
                        self.digest)
            side = [asyncio.create_task(f()) for f in (self._heartbeats, self._liveness,
                                                        self._janitor)]
            try:
                await self._fetch_loop(psub)
                if self._handlers:  # SIGTERM: finish what is held, nak what is not done in time
                    _, late = await asyncio.wait(self._handlers, timeout=self.config.ack_wait)
                    for t in late:
                        t.cancel()
                    if late:
                        await asyncio.wait(late)
            finally:
                for t in side:
                    t.cancel()
                await asyncio.wait(side)
                try:
                    await asyncio.wait_for(self._kv[WORKERS_BUCKET].purge(self._key), 1.0)
                except Exception as exc:
                    logger.debug("worker %s: could not remove its heartbeat: %s", self.name, exc)
        finally:
            await b.close()

    @property
    def _key(self) -> str:
        return f"{self.pool}.{self.name}"

    # -- fetching ------------------------------------------------------------------------------
    async def _fetch_loop(self, psub: Any) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        stop = asyncio.ensure_future(self._stopping.wait())
        # Messages asked for at once: starts at 1 and doubles while the worker keeps up, back
        # to 1 when its nodes are at their concurrency, so one worker does not take what
        # another idle one could run now.
        want = 1
        try:
            while not self._stopping.is_set():
                raise_if_cancelled()
                free = self.concurrency - len(self._handlers)
                if free <= 0 or self._starved:
                    # Busy: leave the messages to idle workers of the pool.
                    want = 1
                    await asyncio.wait({stop, *self._handlers}, timeout=0.005,
                                       return_when=asyncio.FIRST_COMPLETED)
                    continue
                n = min(free, want)
                fetch = asyncio.ensure_future(psub.fetch(n, timeout=1.0))
                await asyncio.wait({stop, fetch}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    await asyncio.wait({fetch})
                    break
                try:
                    msgs = fetch.result()
                except (NatsTimeout, TimeoutError):
                    continue
                except Exception as exc:
                    logger.debug("worker %s: fetch: %s", self.name, exc)
                    await asyncio.sleep(0.1)
                    continue
                if len(msgs) >= n:
                    want = min(want * 2, self.concurrency)
                for msg in msgs:
                    task = asyncio.create_task(self._handle(msg))
                    self._handlers.add(task)
                    task.add_done_callback(self._handlers.discard)
                await asyncio.sleep(0)  # let the handlers start (and find their node busy)
        finally:
            stop.cancel()

    # -- one message ---------------------------------------------------------------------------
    async def _handle(self, msg: Any) -> None:
        run: _Run | None = None
        try:
            _, pid, idx = parse_pool_subject(msg.subject)
            run = await self._run_of(pid)
            if run is None or idx not in run.nodes:
                await msg.ack()  # a dead pipeline's leftover: drop it
                return
            task = asyncio.current_task()
            assert task is not None
            run.tasks.add(task)
            if self.faults.pause_after_fetch:
                await asyncio.sleep(self.faults.pause_after_fetch)
            keepalive = asyncio.create_task(self._keepalive(msg))
            try:
                if await self._split(run, msg):
                    await msg.ack()
                    return
                suspect = msg.metadata.num_delivered >= 2 or ".s" in _msg_id(msg)
                await self._enter(suspect)
                try:
                    out = await self._work(run, pid, idx, msg, suspect)
                finally:
                    await self._leave(suspect)
                if run.dead:
                    await msg.ack()
                    return
                await self._publish(msg, pid, idx, out)
            finally:
                keepalive.cancel()
            self._published += 1
            if self.faults.exit_after_publish and self._published >= self.faults.exit_after_publish:
                logger.warning("fault point: exit after publish, before ack")
                os._exit(17)
            await msg.ack()
            self.stats["messages"] += 1
        except asyncio.CancelledError:
            try:
                await (msg.ack() if run is not None and run.dead else msg.nak())
            except Exception as exc:
                logger.debug("worker %s: nak: %s", self.name, exc)
            raise
        except Exception as exc:
            logger.warning("worker %s: message on %s failed: %s: %s", self.name, msg.subject,
                           type(exc).__name__, exc)
            try:
                await msg.nak(delay=0.5)
            except Exception as exc2:
                logger.debug("worker %s: nak: %s", self.name, exc2)
        finally:
            if run is not None:
                task = asyncio.current_task()
                if task is not None:
                    run.tasks.discard(task)

    async def _split(self, run: _Run, msg: Any) -> bool:
        """A message of several items delivered a third time: workers died twice holding it
        (the second time running it alone), perhaps because of one of its items. Re-publish
        its items one per message (ids derived from the original, so a retry is idempotent): a
        poison item then fails alone. A second delivery runs whole, so results published
        before a crash get the same message ids again and the broker drops the copies."""
        if msg.metadata.num_delivered < 3 or run.mismatch is not None:
            return False
        entries = json.loads(msg.data)
        if len(entries) < 2:
            return False
        base = _msg_id(msg)
        subject = split_subject(msg.subject)
        for e in entries:
            if not await self.broker.publish(subject, encode([e]), f"{base}.s{e[0]}",
                                             wait_for_room=False):
                # No room: run the message whole (items already split off come back twice,
                # and the driver keeps one of each).
                return False
        self.stats["redelivered"] += 1
        return True

    async def _keepalive(self, msg: Any) -> None:
        every = max(0.05, self.config.ack_wait / 3)
        while True:
            raise_if_cancelled()
            await asyncio.sleep(every)
            try:
                await msg.in_progress()
            except Exception as exc:
                logger.debug("worker %s: in_progress: %s", self.name, exc)

    async def _enter(self, suspect: bool) -> None:
        """Messages that may hold a poison item (redelivered, or split from one) run alone on
        this worker, one at a time: a crash then counts against that item only."""
        async with self._gate:
            if suspect:
                self._suspects += 1
                try:
                    await self._gate.wait_for(lambda: not self._normal and not self._alone)
                except BaseException:  # cancelled while waiting: it never entered
                    self._suspects -= 1
                    self._gate.notify_all()
                    raise
                self._alone = True
            else:
                await self._gate.wait_for(lambda: not self._suspects)
                self._normal += 1

    async def _leave(self, suspect: bool) -> None:
        async with self._gate:
            if suspect:
                self._suspects -= 1
                self._alone = False
            else:
                self._normal -= 1
            self._gate.notify_all()

    async def _attempts(self, pid: str, idx: int, seq: int) -> int:
        """Count one more lone run of item `seq`; return how many came before."""
        from nats.js.errors import KeyNotFoundError

        kv = self._kv[ATTEMPTS_BUCKET]
        key = f"{pid}.{idx}.{seq}"
        try:
            before = int((await kv.get(key)).value or b"0")
        except KeyNotFoundError:
            before = 0
        await kv.put(key, str(before + 1).encode())
        return before

    async def _work(self, run: _Run, pid: str, idx: int, msg: Any,
                    suspect: bool) -> list[list[Any]]:
        entries = json.loads(msg.data)
        if msg.metadata.num_delivered > 1:
            self.stats["redelivered"] += 1
        node = run.nodes[idx]
        if run.mismatch is not None:
            return [error_entry(seq, "registry_mismatch", run.mismatch, repr((v,)))
                    for seq, v in entries]
        if suspect and len(entries) > 1 and msg.metadata.num_delivered > self.config.max_deliver + 1:
            # could not be split (no room) and keeps ending its workers
            self.stats["crashed"] += len(entries)
            text = (f"a worker of pool {self.pool!r} ended (crashed or was killed) while running "
                    f"this item's message, {msg.metadata.num_delivered - 1} times")
            return [error_entry(seq, "worker_crashed", text, repr((v,))) for seq, v in entries]
        if suspect and len(entries) == 1:
            seq, value = entries[0]
            before = await self._attempts(pid, idx, seq)
            if before >= self.config.max_deliver:
                self.stats["crashed"] += 1
                text = (f"a worker of pool {self.pool!r} ended (crashed or was killed) each of "
                        f"the {before} times it ran this item alone")
                return [error_entry(seq, "worker_crashed", text, repr((value,)))]
        return await self._process(node, run.sems[idx], entries)

    async def _process(self, node: Processor, sem: asyncio.Semaphore,
                       entries: list[list[Any]]) -> list[list[Any]]:
        faults = self.faults
        eager = node.properties.timeout is None
        out: list[list[Any]] = [[]] * len(entries)
        pending: list[tuple[int, int, tuple[Any, ...], asyncio.Task[Any]]] = []
        try:
            for i, (seq, value) in enumerate(entries):
                if faults.has_exit_on_item and value == faults.exit_on_item:
                    logger.warning("fault point: exit on item %r", value)
                    os._exit(19)
                item = (value,)
                if sem.locked():  # the node runs `concurrency` items here already
                    self._starved += 1
                    try:
                        await sem.acquire()
                    finally:
                        self._starved -= 1
                else:
                    await sem.acquire()
                if eager:
                    try:
                        # the first step runs as the item's own task (a timeout it enters
                        # binds to that task, not to this handler)
                        finished, got = start_eagerly(node.call(item))
                    except (Exception, asyncio.CancelledError) as exc:
                        sem.release()
                        out[i] = self._failed(node, seq, item, exc)
                        continue
                    if finished:
                        sem.release()
                        out[i] = [seq] if got is DROP else [seq, got]
                        continue
                    task = got
                else:
                    task = asyncio.create_task(node.call(item))
                task.add_done_callback(lambda _t: sem.release())
                pending.append((i, seq, item, task))
            for i, seq, item, task in pending:
                await asyncio.wait({task})
                if task.cancelled():
                    out[i] = self._failed(node, seq, item, asyncio.CancelledError("cancelled"))
                    continue
                failure = task.exception()
                if failure is not None:
                    out[i] = self._failed(node, seq, item, failure)
                else:
                    value = task.result()
                    out[i] = [seq] if value is DROP else [seq, value]
        finally:
            for _, _, _, task in pending:
                if not task.done():
                    task.cancel()
        self.stats["items"] += len(entries)
        return out

    def _failed(self, node: Processor, seq: int, item: tuple[Any, ...],
                exc: BaseException) -> list[Any]:
        self.stats["errors"] += 1
        return error_entry(seq, type(exc).__name__, str(exc), repr(item))

    async def _publish(self, msg: Any, pid: str, idx: int, out: list[list[Any]]) -> None:
        limit = self.broker.max_payload
        batches, bad = encode_batches(out, min(limit, max(self.config.batch_bytes, 1 << 19)),
                                      "the result")
        batches, big = too_large(batches, out, limit, "the result")
        if bad or big:
            batches += encode_batches(bad + big, self.config.batch_bytes)[0]
        base = _msg_id(msg)
        subject = results_subject(pid, idx)
        for seqs, data in batches:
            await self.broker.publish(subject, data, f"r.{base}.{seqs[0]}",
                                      headers={HDR_WORKER: self.name})

    # -- pipelines -----------------------------------------------------------------------------
    async def _run_of(self, pid: str) -> _Run | None:
        run = self._runs.get(pid)
        if run is not None:
            return None if run.dead else run
        if pid in self._dead:
            return None
        try:
            await self._kv[LIVE_BUCKET].get(pid)
            entry = json.loads((await self._kv[PIPES_BUCKET].get(pid)).value)[0]
        except Exception as exc:
            from nats.js.errors import KeyNotFoundError

            if isinstance(exc, KeyNotFoundError):
                self._dead[pid] = time.monotonic()
                return None
            raise
        run = self._runs.get(pid)  # another message of it may have built it meanwhile
        if run is None:
            run = self._build(pid, entry)
            self._runs[pid] = run
        return run

    def _build(self, pid: str, entry: dict[str, Any]) -> _Run:
        nodes: dict[int, Processor] = {}
        sems: dict[int, asyncio.Semaphore] = {}
        mismatch = None
        theirs = entry.get("registry")
        if theirs is not None and theirs != self.digest:
            mismatch = (f"worker {self.name!r} runs another registry ({self.digest}; the "
                        f"server's is {theirs})")
        env = dict(entry.get("env") or {})
        env["worker"] = self.name
        for key, spec in entry["nodes"].items():
            idx = int(key)
            props = NodeProperties.model_validate(spec["properties"], strict=False)
            info = self.registry.get(spec["coro"])
            if info is None:
                mismatch = mismatch or (f"worker {self.name!r} has no coroutine "
                                        f"{spec['coro']!r}")
                continue
            kwargs, issues = info.validate_args(spec["args"], f"nodes.{spec['name']}.args")
            if issues:
                mismatch = mismatch or f"worker {self.name!r}: {issues[0].message}"
                continue
            nodes[idx] = Processor(spec["name"], info.fn, args=kwargs, properties=props,
                                   env_vars=env, coro_name=info.name)
            sems[idx] = asyncio.Semaphore(props.concurrency)
        if mismatch is not None:  # answer every item with the error rather than hang the run
            nodes = {int(k): Processor(s["name"], _never, properties=NodeProperties())
                     for k, s in entry["nodes"].items()}
            sems = {k: asyncio.Semaphore(1) for k in nodes}
        return _Run(pid, nodes, sems, mismatch)

    def _forget(self, pid: str) -> None:
        run = self._runs.pop(pid, None)
        self._dead[pid] = time.monotonic()
        if run is not None:
            run.dead = True
            for t in list(run.tasks):
                t.cancel()

    async def _liveness(self) -> None:
        """Drop the work of pipelines whose driver cancelled or died."""
        from nats.js.errors import KeyNotFoundError

        while True:
            raise_if_cancelled()
            await asyncio.sleep(LIVENESS_INTERVAL)
            now = time.monotonic()
            for pid, at in list(self._dead.items()):
                if now - at > DEAD_MEMORY:
                    del self._dead[pid]
            for pid in list(self._runs):
                try:
                    await asyncio.wait_for(self._kv[LIVE_BUCKET].get(pid), 1.0)
                except KeyNotFoundError:
                    logger.info("worker %s: pipeline %s ended; dropping its work", self.name, pid)
                    self._forget(pid)
                except Exception as exc:  # broker away: keep working, check again later
                    logger.debug("worker %s: liveness: %s", self.name, exc)

    async def _janitor(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(JANITOR_INTERVAL)
            try:
                await asyncio.wait_for(self._sweep(), 5.0)
            except Exception as exc:
                logger.debug("worker %s: janitor: %s", self.name, exc)

    async def _sweep(self) -> None:
        """Purge what pipelines with no liveness key left behind (their driver died)."""
        b = self.broker
        # Read what may be stale first, then who is alive: a pipeline that starts in between
        # put its liveness key before anything else, so it is never taken for dead.
        pipes = await b.subjects(f"KV_{PIPES_BUCKET}", f"$KV.{PIPES_BUCKET}.>")
        results = await b.subjects(RESULTS_STREAM, "plr.>")
        inputs = await b.subjects(pool_stream(self.pool), f"pl.{self.pool}.>")
        live = {s.rsplit(".", 1)[1] for s in
                await b.subjects(f"KV_{LIVE_BUCKET}", f"$KV.{LIVE_BUCKET}.>")}
        stale: dict[str, list[str]] = {}
        for s in pipes:
            pid = s.rsplit(".", 1)[1]
            if pid not in live:
                try:
                    entry = json.loads((await self._kv[PIPES_BUCKET].get(pid)).value)[0]
                    stale[pid] = list(entry.get("pools") or [])
                except Exception:
                    stale[pid] = []
        for s in results:
            pid = s.split(".")[1]
            if pid not in live:
                stale.setdefault(pid, [])
        for s in inputs:
            pid = s.split(".")[2]
            if pid not in live:
                stale.setdefault(pid, [])
        for pid, pools in stale.items():
            if self.pool not in pools:
                pools.append(self.pool)
            logger.info("janitor: purging pipeline %s (its driver is gone)", pid)
            await b.purge_pipeline(pid, pools)
            self._forget(pid)

    async def _beat(self) -> None:
        info = {"pool": self.pool, "name": self.name, "registry": self.digest,
                "pid": os.getpid(), "host": socket.gethostname(),
                "active": sorted(self._runs), "held": len(self._handlers), **self.stats}
        await asyncio.wait_for(self._kv[WORKERS_BUCKET].put(self._key, json.dumps(info).encode()),
                               1.0)

    async def _heartbeats(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            try:
                await self._beat()
            except Exception as exc:
                logger.debug("worker %s: heartbeat: %s", self.name, exc)


def _msg_id(msg: Any) -> str:
    return str((msg.headers or {}).get(HDR_MSG_ID) or f"q{msg.metadata.sequence.stream}")


async def _never(self: Processor, item: Any) -> Any:
    raise PipelineError("unreachable")
