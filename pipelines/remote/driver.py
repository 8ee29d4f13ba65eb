"""The driver's side of a distributed run: a stand-in node per pool node, and the link that
connects one pipeline to the broker (setup, liveness, results, cleanup)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from ..errors import NodeFailed, PipelineError
from ..inlets import Inlet
from ..processor import Processor
from ..report import ItemError
from .broker import Broker, raise_if_cancelled
from .config import RemoteConfig
from .errors import BrokerUnavailable, RegistryMismatch
from .wire import (
    HDR_WORKER,
    LIVE_BUCKET,
    PIPES_BUCKET,
    RESULTS_STREAM,
    WORKERS_BUCKET,
    encode,
    encode_batches,
    pool_subject,
    results_consumer,
    too_large,
)

if TYPE_CHECKING:
    from ..compiler import CompiledNode

__all__ = ["RemoteLink", "RemoteProcessor"]

logger = logging.getLogger(__name__)

_PID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
#: Cleanups that outlive the run that started them (a cancelled run must not stop its own).
_CLEANUPS: set[asyncio.Task[None]] = set()


class RemoteProcessor(Processor):
    """A node placed on a worker pool, as the driver sees it: it numbers the items it takes,
    publishes them in batch messages, and passes on what the workers send back (in order when
    `ordered`, each seq once, tombstones counted as drops, errors as item errors)."""

    link: RemoteLink
    index = 0
    pool = ""
    _next = 0  # the next seq to hand out
    _done = 0  # seqs passed on (or counted)

    def attach(self, link: RemoteLink, index: int, pool: str) -> None:
        self.link, self.index, self.pool = link, index, pool
        self.subject = pool_subject(pool, link.pid, index)
        self._next = 0  # the next seq to hand out
        self._done = 0  # seqs passed on (or counted)
        self._wm = 0  # every seq below it is settled
        self._got: dict[int, list[Any]] = {}  # ordered: arrived, waiting for the head
        self._seen: set[int] = set()  # unordered: settled seqs at or above the watermark
        self._fresh: list[list[Any]] = []  # unordered: arrived, to pass on
        self._msg_of: dict[int, int] = {}  # seq -> first seq of its message
        self._msg_left: dict[int, int] = {}  # first seq of a message -> items not settled
        self._out_msgs = 0  # messages published (or being published) and not settled
        self._spans: deque[int] = deque()  # ordered: end seq of each message not settled
        self._failure: PipelineError | None = None
        self._publishing: set[asyncio.Task[None]] = set()  # publishes under way
        self.per_worker: dict[str, int] = {}
        self.duplicates = 0

    # -- results from the workers ------------------------------------------------------------
    def deliver(self, entries: list[Any], worker: str) -> None:
        """Entries of one result message: keep each seq once (the de-dup at the sink)."""
        new = 0
        wm, top = self._wm, self._next
        ordered = self.properties.ordered
        for e in entries:
            if not isinstance(e, list) or not e or not isinstance(e[0], int):
                continue
            seq = e[0]
            if seq < wm or seq >= top:
                self.duplicates += 1
            elif ordered:
                if seq in self._got:
                    self.duplicates += 1
                else:
                    self._got[seq] = e
                    new += 1
            elif seq in self._seen:
                self.duplicates += 1
            else:
                self._seen.add(seq)
                self._fresh.append(e)
                new += 1
        if new:
            self.per_worker[worker] = self.per_worker.get(worker, 0) + new
            self.waker()

    def _settle(self, seq: int) -> None:
        self._done += 1
        first = self._msg_of.pop(seq, None)
        if first is None:
            return
        left = self._msg_left[first] - 1
        if left:
            self._msg_left[first] = left
        else:
            del self._msg_left[first]
            self._out_msgs -= 1

    def _take(self, e: list[Any], out: list[Any]) -> None:
        n = len(e)
        if n == 2:
            out.append(e[1])
        elif n == 1:
            self.metrics.dropped += 1
        else:
            self._remote_error(e)

    def _ready(self) -> list[Any]:
        """Values to pass on now (settling their seqs); a `fail` error is kept for later, so
        what came before it still leaves."""
        out: list[Any] = []
        try:
            self._collect(out)
        except NodeFailed as exc:
            self._failure = exc
        return out

    def _collect(self, out: list[Any]) -> None:
        if self.properties.ordered:
            got, start = self._got, self._wm
            if start not in got:
                return
            wm = start + 1
            while wm in got:
                wm += 1
            pop = got.pop
            entries = [pop(s) for s in range(start, wm)]
            self._wm = wm
            self._done += wm - start
            spans = self._spans
            while spans and spans[0] <= wm:  # messages whose every seq is settled
                spans.popleft()
                self._out_msgs -= 1
            append = out.append
            dropped = 0
            for e in entries:
                n = len(e)
                if n == 2:
                    append(e[1])
                elif n == 1:
                    dropped += 1
                else:
                    self.metrics.dropped += dropped
                    dropped = 0
                    self._remote_error(e)
            self.metrics.dropped += dropped
        elif self._fresh:
            fresh, self._fresh = self._fresh, []
            for e in fresh:
                self._settle(e[0])
                self._take(e, out)
            seen, wm = self._seen, self._wm
            while wm in seen:
                seen.discard(wm)
                wm += 1
            self._wm = wm

    def _remote_error(self, e: list[Any]) -> None:
        try:
            etype, message, item = (str(x) for x in e[2])
        except (TypeError, ValueError):
            etype, message, item = "worker_error", repr(e[2])[:500], "?"
        self.report_error(ItemError(self.name, item, etype, message))

    # -- items to the workers ------------------------------------------------------------------
    def _send(self, items: list[tuple[Any, ...]]) -> None:
        first = self._next
        entries = [[first + i, it[0]] for i, it in enumerate(items)]
        self._next = first + len(items)
        msgs, bad = encode_batches(entries, self.link.config.batch_bytes, "the input value")
        msgs, big = too_large(msgs, entries, self.link.broker.max_payload, "the input value")
        for e in bad + big:  # the input cannot travel: an item error, as if a worker had said so
            self.deliver([e], "driver")
        ordered = self.properties.ordered
        for seqs, data in msgs:
            head = seqs[0]
            if ordered:
                self._spans.append(seqs[-1] + 1)
            else:
                for s in seqs:
                    self._msg_of[s] = head
                self._msg_left[head] = len(seqs)
            self._out_msgs += 1
            task = asyncio.get_running_loop().create_task(
                self._publish(data, f"{self.link.pid}.{self.index}.{head}"))
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _publish(self, data: bytes, msg_id: str) -> None:
        try:
            await self.link.broker.publish(self.subject, data, msg_id)
        except PipelineError as exc:
            exc.node = exc.node or self.name
            self._failure = exc
            self.waker()
        except Exception as exc:
            self._failure = BrokerUnavailable(f"publish failed: {type(exc).__name__}: {exc}",
                                              node=self.name)
            self.waker()

    async def process(self, inlet: Inlet) -> None:
        await self.link.started()
        m = self.metrics
        cap = max(1, min(self.properties.queue_size, self.link.config.edge_cap))
        # no more items per message than one worker runs at once: the rest go to other workers
        batch = max(1, min(self.link.config.batch_items, self.properties.concurrency))
        input_done = False
        while True:
            out = self._ready()
            if out:
                await self.emit(out)
                continue
            if self._failure is not None:
                raise self._failure
            while not input_done and self._out_msgs < cap:
                items = inlet.take(batch)
                if not items:
                    if inlet.exhausted:
                        input_done = True
                        inlet.finish()
                    break
                m.items_in += len(items)
                self._send(items)
            if input_done and not self.inflight:
                self.close_outputs()
                return
            if self._got.get(self._wm) is not None or self._fresh:
                continue
            await self.wait_for_input()

    @property
    def inflight(self) -> int:
        """Items handed to the pool and not passed on yet."""
        return self._next - self._done

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            publishing = list(self._publishing)
            for task in publishing:
                task.cancel()
            if publishing:
                await asyncio.wait(publishing)
            self.link.node_ended()


class RemoteLink:
    """One pipeline's connection to the broker: sets up its streams, keys and results consumer,
    keeps its liveness key fresh, routes results to the stand-in nodes, and leaves nothing
    behind when the run ends however it ends."""

    def __init__(self, pipeline_name: str, env_vars: dict[str, Any], order: list[str],
                 nodes: dict[str, Processor], compiled: dict[str, CompiledNode],
                 config: RemoteConfig) -> None:
        """`pipeline_name`, `env_vars`: the pipeline's; `order`: its node names, upstream first;
        `nodes`: its built nodes (the ones placed on a pool are RemoteProcessors)."""
        self.config = config
        # The service's pipeline id names it in the broker too (easier to follow); a library
        # run gets a fresh one.
        given = str(env_vars.get("pipeline_id") or "")
        self.pid = given if _PID_RE.match(given) else uuid.uuid4().hex[:16]
        self.broker: Broker = config.broker or Broker(config)
        self._own_broker = config.broker is None
        self.nodes: dict[int, RemoteProcessor] = {}
        self.by_name: dict[str, RemoteProcessor] = {}
        entry_nodes: dict[str, Any] = {}
        for idx, name in enumerate(order):
            c = compiled[name]
            pool = c.spec.properties.pool
            if pool is None:
                continue
            node = nodes[name]
            assert isinstance(node, RemoteProcessor)
            node.attach(self, idx, pool)
            self.nodes[idx] = node
            self.by_name[name] = node
            entry_nodes[str(idx)] = {
                "name": name, "coro": c.spec.coro, "args": c.spec.args,
                "properties": c.spec.properties.model_dump(),
            }
        self.pools = sorted({n.pool for n in self.nodes.values()})
        try:
            env = json.loads(json.dumps(env_vars))
        except (TypeError, ValueError):
            env = {}
        self.entry = {"name": pipeline_name, "registry": config.registry_digest,
                      "pools": self.pools, "env": env, "nodes": entry_nodes}
        self._ready: asyncio.Future[None] | None = None
        self._running = len(self.nodes)
        self._all_ended: asyncio.Event | None = None

    def _ready_future(self) -> asyncio.Future[None]:
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
        return self._ready

    async def started(self) -> None:
        """Wait until the broker is set up for this run."""
        await asyncio.shield(self._ready_future())

    def node_ended(self) -> None:
        self._running -= 1
        if self._running <= 0 and self._all_ended is not None:
            self._all_ended.set()

    def node_metrics(self, name: str) -> dict[str, Any]:
        node = self.by_name.get(name)
        if node is None:
            return {}
        return {"pool": node.pool, "remote_id": self.pid, "workers": len(node.per_worker),
                "per_worker": dict(node.per_worker), "duplicates": node.duplicates}

    # -- the run -------------------------------------------------------------------------------
    async def run(self) -> None:
        ready = self._ready_future()
        self._all_ended = asyncio.Event()
        if self._running <= 0:
            self._all_ended.set()
        try:
            psub, live = await self._setup()
            ready.set_result(None)
            async with asyncio.TaskGroup() as tg:
                fetch = tg.create_task(self._fetch_loop(psub))
                beat = tg.create_task(self._heartbeat(live))
                await self._all_ended.wait()
                fetch.cancel()
                beat.cancel()
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None
        finally:
            if not ready.done():
                ready.cancel()
            task = asyncio.get_running_loop().create_task(self._cleanup())
            _CLEANUPS.add(task)
            task.add_done_callback(_CLEANUPS.discard)
            await asyncio.wait({task}, timeout=self.config.broker_timeout)

    async def _setup(self) -> tuple[Any, Any]:
        from nats.js.api import AckPolicy, ConsumerConfig

        cfg, b = self.config, self.broker
        await b.connect()
        try:
            async with asyncio.timeout(cfg.broker_timeout):
                for pool in self.pools:
                    await b.ensure_pool(pool)
                await b.ensure_results()
                live = await b.kv(LIVE_BUCKET)
                pipes = await b.kv(PIPES_BUCKET)
                await self._check_workers()
                await live.put(self.pid, b"1")
                await pipes.put(self.pid, encode([self.entry]))
                psub = await b.js.pull_subscribe(
                    f"plr.{self.pid}.>", durable=results_consumer(self.pid),
                    stream=RESULTS_STREAM,
                    config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT,
                                          ack_wait=max(cfg.ack_wait, 5.0)))
        except PipelineError:
            raise
        except (TimeoutError, Exception) as exc:
            raise BrokerUnavailable(f"cannot set up the run on the broker at {cfg.nats_url}: "
                                    f"{type(exc).__name__}: {exc}") from None
        return psub, live

    async def _check_workers(self) -> None:
        """Refuse the run if a live worker of one of its pools runs another registry."""
        ours = self.config.registry_digest
        if ours is None:
            return
        for info in await worker_infos(self.broker, self.pools):
            theirs = info.get("registry")
            if theirs != ours:
                pool = info.get("pool")
                node = next((n.name for n in self.nodes.values() if n.pool == pool), None)
                raise RegistryMismatch(
                    f"worker {info.get('name')!r} of pool {pool!r} runs another registry "
                    f"({theirs}; the server's is {ours}): start the workers with the same "
                    "coroutines and flags as the server", node=node)

    async def _fetch_loop(self, psub: Any) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        nodes = self.nodes
        while True:
            raise_if_cancelled()
            try:
                msgs = await psub.fetch(256, timeout=1.0)
            except (NatsTimeout, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is away: the heartbeat decides when to give up
                logger.debug("run %s: fetch: %s", self.pid, exc)
                await asyncio.sleep(0.1)
                continue
            for msg in msgs:
                try:
                    idx = int(msg.subject.rsplit(".", 1)[1])
                    entries = json.loads(msg.data)
                except (ValueError, IndexError):
                    logger.warning("run %s: unreadable result message on %s", self.pid,
                                   msg.subject)
                    entries, idx = [], -1
                node = nodes.get(idx)
                if node is not None and isinstance(entries, list):
                    worker = (msg.headers or {}).get(HDR_WORKER, "?")
                    node.deliver(entries, worker)
                try:
                    await msg.ack()
                except Exception as exc:  # redelivered later; the de-dup drops it then
                    logger.debug("run %s: ack: %s", self.pid, exc)

    async def _heartbeat(self, live: Any) -> None:
        """Renew the liveness key; fail the run when the broker stays away too long."""
        cfg = self.config
        every = max(0.05, min(cfg.live_ttl / 4, 0.5))
        last_ok = time.monotonic()
        next_put = 0.0
        while True:
            raise_if_cancelled()
            now = time.monotonic()
            if now >= next_put:
                try:
                    await asyncio.wait_for(live.put(self.pid, b"1"), timeout=1.0)
                    last_ok = time.monotonic()
                    next_put = last_ok + every
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.debug("run %s: liveness: %s", self.pid, exc)
            down = self.broker.down_since
            gone = max(time.monotonic() - last_ok - every,
                       time.monotonic() - down if down is not None else 0.0)
            if gone > cfg.broker_timeout:
                raise BrokerUnavailable(
                    f"the broker at {cfg.nats_url} has been unreachable for more than "
                    f"{cfg.broker_timeout} s")
            await asyncio.sleep(min(every, 0.25))

    async def _cleanup(self) -> None:
        b = self.broker
        try:
            if b.connected:
                await asyncio.wait_for(b.purge_pipeline(self.pid, self.pools),
                                       self.config.broker_timeout)
        except Exception as exc:  # the workers' janitor purges what is left
            logger.info("run %s: cleanup left to the janitor: %s", self.pid, exc)
        finally:
            if self._own_broker:
                await b.close()


async def worker_infos(broker: Broker, pools: list[str] | None = None) -> list[dict[str, Any]]:
    """The heartbeats of the live workers (of `pools`, or all)."""
    kv = await broker.kv(WORKERS_BUCKET)
    subjects = await broker.subjects(f"KV_{WORKERS_BUCKET}", f"$KV.{WORKERS_BUCKET}.>")
    out = []
    for subject in subjects:
        key = subject.split(".", 2)[2]
        if pools is not None and key.split(".", 1)[0] not in pools:
            continue
        try:
            entry = await kv.get(key)
            info = json.loads(entry.value or b"null")
        except Exception:
            continue
        if isinstance(info, dict):
            out.append(info)
    return out
