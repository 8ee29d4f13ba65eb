"""The Plumber: builds a compiled spec's nodes, joins them with bounded channels, runs and stops
them, and hands out the results and the report (the compile step is `compiler.py`, the result
sink `sink.py`, the stall watchdog `stall.py`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from .channel import Channel, Waker
from .compiler import CompiledNode, CoroMap, compile_spec, inflight_capacity
from .driven import DrivenSource
from .errors import PipelineError
from .group import NodeGroup
from .processor import InputProcessor, MergeInlet, Processor, ZipInlet
from .registry import Registry
from .report import ItemError, LogSkippedItems, NodeReport, Result, RunReport, RunStatus
from .reprs import safe_repr
from .sink import ResultSink
from .sizes import json_size
from .spec import LIBRARY_LIMITS, GraphSpec, SpecLimits
from .stall import StallWatch
from .work import WorkMeter

if TYPE_CHECKING:
    from .remote.config import RemoteConfig
    from .remote.driver import RemoteLink

# ResultSink, compile_spec, CompiledNode, inflight_capacity live in sink.py and compiler.py;
# they are re-exported here for callers of the old paths.
__all__ = ["Plumber", "ResultSink", "compile_spec", "CompiledNode", "inflight_capacity"]

logger = logging.getLogger(__name__)



class Plumber:
    """Builds a pipeline from a graph spec and runs it.

    Construction validates the whole spec (raising :class:`SpecError` with every problem) and
    starts nothing. Run it with ``await plumber.run()``, ``async with plumber:``, or, as the
    original did, ``plumber.create_pipeline()`` and later ``await plumber.wait()``.

    :param input_d: the graph spec, as a dict in the original format or a :class:`GraphSpec`.
    :param coro_map: library use: turns each node's ``coro`` value into a coroutine function.
    :param env_vars: the caller's context, visible to coroutines as ``self.env_vars``.
    :param registry: service use: resolve ``coro`` names only through this whitelist.
    :param limits: caps the spec must fit (default: generous library limits).
    :param collect: keep output values for :meth:`results` / :meth:`result_batches`;
        when false they are only counted.
    :param result_buffer: how many output values may wait for the reader before outputs wait.
    :param on_item_error: called with an :class:`ItemError` for every item skipped on error;
        the default, :class:`LogSkippedItems`, logs them as warnings (rate-limited) on the
        ``pipelines.report`` logger. Pass ``lambda err: None`` to keep them only in the report.
    :param shared_task: the local processor nodes take their turns in one task (the default:
        a batch moves down a chain of quick nodes in one wake-up); false: a task per node.
    :param remote: the broker and limits for nodes placed on worker pools
        (``properties.pool``); without it a spec that names a pool is refused.
    """

    # Started pipelines stay referenced until they end, even if the caller drops the Plumber
    # (the original's `Plumber(...).create_pipeline()` pattern).
    _running: ClassVar[set[asyncio.Task[None]]] = set()

    def __init__(
        self,
        input_d: Mapping[str, Any] | GraphSpec,
        coro_map: CoroMap | None = None,
        env_vars: dict[str, Any] | None = None,
        *,
        registry: Registry | None = None,
        limits: SpecLimits | None = None,
        collect: bool = False,
        result_buffer: int = 1024,
        on_item_error: Callable[[ItemError], None] | None = None,
        name: str | None = None,
        remote: RemoteConfig | None = None,
        shared_task: bool = True,
    ) -> None:
        self.limits = limits or LIBRARY_LIMITS
        self.spec, self.topo, compiled = compile_spec(
            input_d, registry=registry, coro_map=coro_map, limits=self.limits, remote=remote)
        self._remote: RemoteLink | None = None
        self.env_vars: dict[str, Any] = env_vars if env_vars is not None else {}
        self.name = name or "pipeline"
        self.collect = collect
        self._sink = ResultSink(collect, len(self.topo.outputs), max(1, result_buffer))
        self.nodes: dict[str, Processor] = {}
        self._edges: list[tuple[str, str, Channel]] = []
        self._group: NodeGroup | None = None
        self._driven: list[DrivenSource] = []
        self._build(compiled, on_item_error if on_item_error is not None else LogSkippedItems(),
                    shared_task)
        if remote is not None and any(c.spec.properties.pool for c in compiled.values()):
            from .remote.driver import RemoteLink

            self._remote = RemoteLink(self.name, self.env_vars, list(self.topo.order), self.nodes,
                                      compiled, remote)
        self._task: asyncio.Task[None] | None = None
        self._status = RunStatus.PENDING
        self._report: RunReport | None = None
        self._t0: float | None = None
        self._t1: float | None = None
        self._seq = 0
        self._reading = False
        self._watch: StallWatch | None = None

    def _build(self, compiled: dict[str, CompiledNode],
               on_item_error: Callable[[ItemError], None] | None, shared_task: bool) -> None:
        topo = self.topo
        limit = self.limits.max_pipeline_items
        work = WorkMeter(limit) if limit is not None else None
        # the local processor nodes that share one task (see group.py), and its waker
        local = [name for name in topo.order if name not in topo.inputs
                 and compiled[name].spec.properties.pool is None]
        grouped = set(local) if shared_task and len(local) > 1 else set()
        waker = Waker()
        for name in topo.order:
            c = compiled[name]
            cls: type[Processor] = InputProcessor if name in topo.inputs else Processor
            if c.spec.properties.pool is not None:
                from .remote.driver import RemoteProcessor

                cls = RemoteProcessor
            node = cls(name, c.info.fn, args=c.args, properties=c.spec.properties,
                       env_vars=self.env_vars, coro_name=c.info.name, on_item_error=on_item_error,
                       waker=waker if name in grouped else None)
            if isinstance(node, InputProcessor):
                node.max_items = self.limits.max_source_items
            node.max_item_bytes = self.limits.max_item_bytes
            node.work = work
            self.nodes[name] = node
        for name in topo.order:
            ups = topo.upstream[name]
            if not ups:
                continue
            node = self.nodes[name]
            props = node.properties
            if len(ups) == 1 or not props.aggregate_inputs:
                ch = Channel(props.queue_size, producers=len(ups), wake=node.waker)
                node.inlet = MergeInlet(ch)
                for u in ups:
                    self.nodes[u].outlets.append(ch)
                    self._edges.append((u, name, ch))
            else:
                chans = []
                for u in ups:
                    ch = Channel(props.queue_size, wake=node.waker)
                    self.nodes[u].outlets.append(ch)
                    self._edges.append((u, name, ch))
                    chans.append(ch)
                node.inlet = ZipInlet(chans)
        for name in topo.outputs:
            self.nodes[name].sink = self._sink
        if grouped:
            # The sources that alone feed one edge into the group: its task runs their steps
            # too. (Not on an edge other nodes feed as well: the group would run the source as
            # soon as there is room, ahead of the others waiting for it.)
            producers = Counter(id(ch) for _, _, ch in self._edges)
            consumer = {id(ch): b for _, b, ch in self._edges}
            self._driven = [
                DrivenSource(node, self.nodes[consumer[id(node.outlets[0])]])
                for name in topo.order
                if isinstance(node := self.nodes[name], InputProcessor)
                and len(node.outlets) == 1 and producers[id(ch := node.outlets[0])] == 1
                and consumer[id(ch)] in grouped]
            self._group = NodeGroup([self.nodes[name] for name in local], waker, self._driven)

    # -- state -------------------------------------------------------------------------------
    @property
    def status(self) -> RunStatus:
        return self._status

    @property
    def done(self) -> bool:
        return self._status.terminal

    @property
    def topology(self) -> dict[str, Any]:
        """Nodes (name, coro, kind), edges and output nodes, for display."""
        return {
            "nodes": [{"name": n.name, "coro": n.coro_name, "kind": n.kind}
                      for n in self.nodes.values()],
            "edges": [[a, b] for a, b, _ in self._edges],
            "outputs": list(self.topo.outputs),
        }

    def _elapsed(self) -> float:
        if self._t0 is None:
            return 0.0
        return (self._t1 if self._t1 is not None else time.monotonic()) - self._t0

    def metrics(self) -> dict[str, Any]:
        """Per-node and per-edge counters, now; safe to call while running."""
        nodes = {}
        for n in self.nodes.values():
            snap = n.metrics.snapshot()
            snap.update(coro=n.coro_name, kind=n.kind, inflight=n.inflight, queue=n.queue_depth(),
                        unpaired=n.unpaired())
            if isinstance(n, InputProcessor):
                snap["in"] = snap["out"]  # a source's `in` is what it produced (as in the report)
            if self._remote is not None:
                snap.update(self._remote.node_metrics(n.name))
            nodes[n.name] = snap
        return {
            "status": self._status.value,
            "elapsed": round(self._elapsed(), 3),
            "results": self._sink.count,
            "nodes": nodes,
            "edges": [{"from": a, "to": b, "depth": len(ch.buf), "capacity": ch.maxsize}
                      for a, b, ch in self._edges],
        }

    def held_bytes(self, limit: int) -> int:
        """About how many bytes the values waiting in the pipeline's queues and result buffer
        take (as JSON); counting stops once over `limit`. Safe to call while running."""
        total = 0
        seen: set[int] = set()
        channels = [ch for _, _, ch in self._edges]
        if self._sink.channel is not None:
            channels.append(self._sink.channel)
        for ch in channels:
            if id(ch) in seen:
                continue
            seen.add(id(ch))
            for v in ch.buf:
                t = type(v)
                if t is int or t is float or v is None or t is bool:
                    total += 8
                elif t is str:
                    total += len(v) + 2
                else:
                    total += json_size(v, max(0, limit - total))
                if total > limit:
                    return total
        return total

    def _make_report(self, error: PipelineError | None = None) -> RunReport:
        nodes = {
            # A source's `in` is what it produced, however the run ended (live metrics agree).
            n.name: NodeReport(n.name,
                               n.metrics.items_out if isinstance(n, InputProcessor) else n.metrics.items_in,
                               n.metrics.items_out, n.metrics.errors,
                               n.metrics.retries, n.metrics.dropped, n.unpaired(),
                               n.metrics.status, list(n.first_errors))
            for n in self.nodes.values()
        }
        return RunReport(self._status, self._elapsed(), self._sink.count, nodes, error)

    @property
    def report(self) -> RunReport:
        """The final report once done; a live one before."""
        return self._report if self._report is not None else self._make_report()

    # -- running -----------------------------------------------------------------------------
    def start(self) -> Plumber:
        """Start every node in the running event loop and return at once."""
        if self._task is not None or self._status is not RunStatus.PENDING:
            raise RuntimeError("this pipeline was started (or cancelled) already; "
                               "build a new Plumber to run it again")
        loop = asyncio.get_running_loop()
        self._status = RunStatus.RUNNING
        self._t0 = time.monotonic()
        task = loop.create_task(self._main(), name=f"pipelines:{self.name}")
        self._task = task
        Plumber._running.add(task)
        task.add_done_callback(Plumber._running.discard)
        return self

    #: The original API: start the pipeline (it now also finishes; see :meth:`wait`).
    create_pipeline = start

    async def _main(self) -> None:
        error: PipelineError | None = None
        status = RunStatus.FAILED
        self._watch = StallWatch(list(self.nodes.values()), self._edges)
        self._watch.start()
        try:
            async with asyncio.TaskGroup() as tg:
                if self._remote is not None:
                    tg.create_task(self._remote.run(), name=f"pipelines:{self.name}:remote")
                grouped: set[str] = set()
                for src in self._driven:  # (their tasks first: the group's steps need them)
                    src.start(tg, f"pipelines:{self.name}:{src.node.name}")
                    grouped.add(src.node.name)
                if self._group is not None:
                    grouped.update(self._group.names)
                    tg.create_task(self._group.run(),
                                   name=f"pipelines:{self.name}:{'+'.join(self._group.names)}")
                for node in self.nodes.values():
                    if node.name not in grouped:
                        tg.create_task(node.run(), name=f"pipelines:{self.name}:{node.name}")
            status = RunStatus.COMPLETED
        except asyncio.CancelledError:
            status = RunStatus.CANCELLED
            raise
        except BaseExceptionGroup as group:
            error = _first_error(group)
            if error is None:
                logger.error("pipeline %s: internal error", self.name, exc_info=group)
                error = PipelineError(f"internal error: {safe_repr(group.exceptions[0])}")
        finally:
            if self._watch is not None:
                self._watch.stop()
                self._watch = None
            self._t1 = time.monotonic()
            self._status = status
            self._report = self._make_report(error)
            if self._sink.channel is not None:
                self._sink.channel.force_close()

    async def wait(self) -> RunReport:
        """Wait until every node has ended; return the report (it does not raise on failure)."""
        if self._task is None:
            raise RuntimeError("the pipeline is not started: call start() or run()")
        await asyncio.wait({self._task})
        assert self._report is not None
        return self._report

    async def run(self) -> RunReport:
        """Start, wait for the end, and return the report. Cancelling the caller cancels it."""
        self.start()
        try:
            return await self.wait()
        except asyncio.CancelledError:
            await self.cancel()
            raise

    async def cancel(self) -> RunReport:
        """Stop every task of the pipeline and wait for them; return the report."""
        task = self._task
        if task is None:
            self._status = RunStatus.CANCELLED
            self._report = self._make_report()
            return self._report
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        assert self._report is not None
        return self._report

    async def __aenter__(self) -> Plumber:
        if self._task is None:
            self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.cancel()

    # -- results -----------------------------------------------------------------------------
    async def result_batches(self, max_batch: int = 1024) -> AsyncIterator[list[Result]]:
        """Output values as they come, in lists of whatever is ready (starts the pipeline).

        Outputs wait while the reader does not keep up (backpressure); leaving the loop early
        drops the rest of the results, and the pipeline runs on to its end.
        """
        ch = self._sink.channel
        if ch is None:
            raise RuntimeError("results are not kept: build the Plumber with collect=True")
        if self._reading:
            raise RuntimeError("results are already being read")
        self._reading = True
        if self._task is None:
            self.start()
        waker = Waker()
        ch.attach(waker)
        try:
            while True:
                items = ch.take(max_batch)
                if items:
                    seq = self._seq
                    self._seq = seq + len(items)
                    yield [Result(node, seq + i, v) for i, (node, v) in enumerate(items)]
                    continue
                if ch.closed:
                    return
                await waker.wait()
        finally:
            ch.abandon()

    async def results(self) -> AsyncIterator[Result]:
        """Output values one by one (see :meth:`result_batches`).

        After the last value of a run that failed, it raises the error that stopped the run
        (as the client's ``async for item in run`` does); a completed or cancelled run just
        ends. :meth:`wait` returns the report either way.

        :raises PipelineError: after the last result, when the run failed.
        """
        async for batch in self.result_batches():
            for r in batch:
                yield r
        report = self._report if self._report is not None else await self.wait()
        if report.status is RunStatus.FAILED:
            raise report.error if report.error is not None else PipelineError("the pipeline failed")


def _first_error(group: BaseExceptionGroup[Any]) -> PipelineError | None:
    for exc in group.exceptions:
        if isinstance(exc, PipelineError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_error(exc)
            if found is not None:
                return found
    return None
