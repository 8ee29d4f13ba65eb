"""How the scripts show things: result lines, reports, errors, the registry, the live view.

Plain text goes through ``print`` (stdout for data, stderr for everything else); the live view
(a progress bar and per-node counters) is drawn with rich only when stdout is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, Literal, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .errors import format_error, one_line
from .run import Run
from .types import Announcement, DoneReport, RegistryEntry, ResultItem

__all__ = [
    "LiveView",
    "OutputFormat",
    "format_announcement",
    "format_registry",
    "format_report",
    "format_result",
    "print_error",
]

OutputFormat = Literal["text", "json"]


def format_announcement(item: Announcement) -> str:
    """``announce: <message>`` on one bounded line (control characters escaped)."""
    return f"announce: {one_line(item.message, 1000)}"


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)


# Control characters in a string result would break the one-line-per-result format (or
# drive the terminal): show them escaped, as JSON would.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
}


def format_result(item: ResultItem, fmt: OutputFormat, *, show_node: bool = True) -> str:
    """One result as a line: ``node: value`` (text) or a JSON object (json)."""
    if fmt == "json":
        return _compact(item.to_dict())
    value = item.value.translate(_CONTROL) if isinstance(item.value, str) else _compact(item.value)
    if show_node and item.node is not None:
        return f"{item.node}: {value}"
    return value


def format_report(report: DoneReport, *, error_count: int = 0) -> str:
    """The one-line summary of a finished run, plus the error when it failed."""
    line = (
        f"done: {report.status}, {report.results} result{'s' if report.results != 1 else ''}"
        f" in {report.elapsed:.2f} s"
    )
    unpaired = sum(int(n.get("unpaired") or 0) for n in report.nodes.values())
    errors = sum(int(n.get("errors") or 0) for n in report.nodes.values()) or error_count
    if errors:
        line += f", {errors} item error{'s' if errors != 1 else ''}"
    if unpaired:
        line += f", {unpaired} unpaired"
    if report.pipeline_id:
        line += f" (pipeline {report.pipeline_id})"
    return line


def print_error(message: str, *, file: TextIO | None = None) -> None:
    """Print ``error: message`` on stderr, indenting continuation lines."""
    out = file or sys.stderr
    print("error: " + message.replace("\n", "\n  ").rstrip(), file=out)


def format_item_error(payload: Mapping[str, Any]) -> str:
    """A non-terminal ``pipeline_error`` (one item failed and was skipped) as one line."""
    return "warning: " + format_error(payload).splitlines()[0]


def format_registry(entries: list[RegistryEntry]) -> str:
    """The registry as text: one line per coroutine, one indented line per argument."""
    width = max((len(e.name) for e in entries), default=0)
    lines: list[str] = []
    for entry in sorted(entries, key=lambda e: e.name):
        doc = entry.doc.strip().splitlines()[0] if entry.doc.strip() else ""
        lines.append(f"{entry.name:<{width}}  {entry.kind:<9}  {doc}".rstrip())
        for name, typ, default, required in entry.arguments():
            tail = "required" if required else f"default {_compact(default)}"
            lines.append(f"{'':<{width}}    {name}: {typ} ({tail})")
    return "\n".join(lines)


_COLUMNS = ("in", "out", "errors", "inflight", "queue", "rate", "latency_ms")
_HEADERS = ("in", "out", "errors", "inflight", "queue", "items/s", "latency ms")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class LiveView:
    """A progress bar (nodes done), the result count and a table of per-node counters.

    Redrawn by :meth:`refresh`; results are printed above it with :meth:`print_line`.
    """

    def __init__(self, console: Console, run: Run) -> None:
        self._console = console
        self._run = run
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("nodes done  [bold]{task.fields[results]}[/] results"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
        )
        self._task = self._progress.add_task("running", total=None, results=0)
        self._live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        self.refresh()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.refresh()
        self._live.__exit__(None, None, None)

    def print_line(self, line: str) -> None:
        """Print a line of output above the live view (no markup, no highlighting)."""
        self._console.print(Text(line), soft_wrap=True, highlight=False)

    def refresh(self) -> None:
        """Redraw from the run's latest metrics and counts."""
        run = self._run
        snapshot = run.metrics or {}
        raw = snapshot.get("nodes")
        nodes: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
        for entry in run.info.nodes if run.info else []:
            # Before the first metrics event (or for a very short run) show the topology.
            name = str(entry.get("name"))
            base = nodes.get(name)
            if not isinstance(base, Mapping):
                nodes[name] = {"coro": entry.get("coro", ""), "status": "pending"}
            elif "coro" not in base:
                nodes[name] = {**base, "coro": entry.get("coro", "")}
        if run.report is not None:
            # The last metrics snapshot predates the end; the report has the final counts.
            for name, final in run.report.nodes.items():
                before = nodes.get(name)
                merged = dict(before) if isinstance(before, Mapping) else {}
                merged.update({k: final[k] for k in ("status", "in", "out", "errors") if k in final})
                merged.update(inflight=0, queue=0)
                nodes[name] = merged
        total = len(nodes) or (len(run.info.nodes) if run.info else 0) or None
        finished = sum(
            1
            for n in nodes.values()
            if isinstance(n, Mapping) and n.get("status") in ("done", "failed", "cancelled")
        )
        status = run.report.status if run.report else "running"
        self._progress.update(
            self._task,
            description=status,
            total=total,
            completed=total if run.report and run.report.ok and total else finished,
            results=f"{run.received:,}",
        )
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("node")
        table.add_column("coro")
        table.add_column("status")
        for header in _HEADERS:
            table.add_column(header, justify="right")
        for name, n in nodes.items():
            if not isinstance(n, Mapping):
                continue
            table.add_row(
                Text(str(name)),
                Text(str(n.get("coro", ""))),
                Text(str(n.get("status", ""))),
                *(_cell(n.get(key)) for key in _COLUMNS),
            )
        parts: list[Any] = [self._progress]
        if nodes:
            parts.append(table)
        if run.error_count:
            last = run.errors[-1] if run.errors else {}
            parts.append(Text(f"{run.error_count} item error(s); last: {format_error(last)}"[:300]))
        self._live.update(Group(*parts), refresh=True)
