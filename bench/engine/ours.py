"""Our engine: each workload as a graph spec in the original format, run by the Plumber."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .workloads import IO_CONCURRENCY, IO_DELAY, Acc, Runner, Variant, make_item, slow_pause

__all__ = ["BIG_QUEUE", "as_node_coro", "engine_available", "engine_spec", "run_engine",
           "engine_variants"]

#: the queue_size of the informative big-batch variant (the default is 64)
BIG_QUEUE = 512


# -------------------------------------------------------------------------------- pipelines


def engine_available() -> str | None:
    """None when ``from pipelines import Plumber`` works, else the reason."""
    try:
        from pipelines import Plumber  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not ready yet"
        return f"{type(exc).__name__}: {exc}"
    return None


def engine_spec(
    workload: str, n: int, acc: Acc, props: dict[str, Any] | None = None,
    stages: Sequence[Callable[[Any], Awaitable[Any]]] | None = None,
) -> dict[str, Any]:
    """The workload in the original graph-spec format, its sink counting into ``acc``;
    ``props`` go on every node; ``stages``: W3's three stages as plain ``fn(x)`` (traced ones,
    from bench/w3_stages.py), instead of its own."""
    p = dict(props or {})

    async def src(self: Any, output_q: Any, n: int) -> None:
        for i in range(n):
            await output_q.put(i)

    async def src_items(self: Any, output_q: Any, n: int) -> None:
        for i in range(n):
            await output_q.put(make_item(i))

    async def inc(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0] + 1

    async def dbl(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0] * 2

    async def plus3(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0] + 3

    async def io(self: Any, q_elt: tuple[Any, ...]) -> Any:
        await asyncio.sleep(IO_DELAY)
        return q_elt[0] + 1

    async def fwd(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return q_elt[0]

    async def sink(self: Any, q_elt: tuple[Any, ...]) -> None:
        acc.count += 1
        acc.total += q_elt[0]

    async def zip_sink(self: Any, q_elt: tuple[Any, ...]) -> None:
        acc.count += 1
        acc.total += q_elt[0] + q_elt[1]

    async def slow_sink(self: Any, q_elt: tuple[Any, ...]) -> None:
        acc.count += 1
        acc.total += len(q_elt[0])
        await slow_pause(acc.count)

    def node(coro: Any, extra: dict[str, Any] | None = None, **args: Any) -> dict[str, Any]:
        d: dict[str, Any] = {"coro": coro}
        if args:
            d["args"] = args
        props_here = {**p, **(extra or {})}
        if props_here:
            d["properties"] = props_here
        return d

    if workload == "W1":
        nodes = {"src": node(src, n=n), "inc": node(inc), "dbl": node(dbl), "sink": node(sink)}
        graph: dict[str, Any] = {"src": ("inc",), "inc": ("dbl",), "dbl": ("sink",), "sink": None}
    elif workload in ("W2", "W2z"):
        merge = workload == "W2"
        nodes = {
            "src": node(src, n=n), "a": node(inc), "b": node(dbl), "c": node(plus3),
            "sink": node(sink, {"aggregate_inputs": False}) if merge else node(zip_sink),
        }
        graph = {"src": ("a",), "a": ("b", "c"), "b": ("sink",), "c": ("sink",), "sink": None}
    elif workload == "W3":
        io_props = {"concurrency": IO_CONCURRENCY}
        ios = [io] * 3 if stages is None else [as_node_coro(fn) for fn in stages]
        nodes = {
            "src": node(src, n=n), "io1": node(ios[0], io_props), "io2": node(ios[1], io_props),
            "io3": node(ios[2], io_props), "sink": node(sink),
        }
        graph = {"src": ("io1",), "io1": ("io2",), "io2": ("io3",), "io3": ("sink",),
                 "sink": None}
    elif workload == "W4":
        nodes = {"src": node(src_items, n=n), "fwd": node(fwd), "sink": node(slow_sink)}
        graph = {"src": ("fwd",), "fwd": ("sink",), "sink": None}
    else:
        raise ValueError(workload)
    return {"nodes": nodes, "graph": graph}


def as_node_coro(fn: Callable[[Any], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A plain ``fn(x)`` as a processor coroutine of the original format."""

    async def stage(self: Any, q_elt: tuple[Any, ...]) -> Any:
        return await fn(q_elt[0])

    return stage


async def run_engine(
    workload: str, n: int, acc: Acc, props: dict[str, Any] | None = None,
    shared_task: bool = True, plumber: Any = None,
    stages: Sequence[Callable[[Any], Awaitable[Any]]] | None = None,
) -> Any:
    """One run of the workload; `plumber`: the Plumber class to run it with (by default the
    installed package's; bench/engine_ab.py passes another revision's); `stages`: W3's, as
    for `engine_spec`."""
    if plumber is None:
        from pipelines import Plumber

        plumber = Plumber
    spec = engine_spec(workload, n, acc, props, stages)
    # exactly the documented library call; results are not collected by default (collect=False),
    # the sinks count what reaches them
    report = await plumber(spec, coro_map=lambda x: x, shared_task=shared_task).run()
    status = getattr(getattr(report, "status", None), "value", getattr(report, "status", None))
    if status not in (None, "completed"):
        raise RuntimeError(f"pipelines run ended with status {status!r}: {report!r}")
    return report


def engine_variants(workload: str) -> list[Variant]:
    def build(props: dict[str, Any] | None, shared_task: bool = True) -> Runner:
        async def run(n: int, acc: Acc) -> None:
            await run_engine(workload, n, acc, props, shared_task)

        return run

    out = [Variant("pipelines", "default properties", build(None))]
    if workload in ("W1", "W2", "W3"):
        # What sharing one task among the processor nodes gives, measured in the same run.
        out.append(Variant("pipelines", "a task per node [info]", build(None, False),
                           comparable=False))
    if workload in ("W1", "W2", "W2z"):
        out.append(Variant("pipelines", "concurrency=1 [variant]", build({"concurrency": 1}),
                           comparable=False))
    if workload in ("W1", "W2"):
        # Eight times bigger batches: what the per-batch costs (node turns, task wake-ups,
        # event-loop iterations) take at the default queue_size shows against it (the note
        # beside a missed target).
        out.append(Variant("pipelines", f"queue_size={BIG_QUEUE} [info]",
                           build({"queue_size": BIG_QUEUE}), comparable=False))
    return out


