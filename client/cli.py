"""The ``pipelines-client`` scripts: demo, run, validate, registry.

    python -m client demo [--url URL]
    python -m client run FILE [--format text|json] [--url URL]
    python -m client validate FILE [--url URL]
    python -m client registry [--url URL]

Exit codes: 0 success; 1 the pipeline failed, was cancelled or the graph is invalid;
2 bad usage or an unreadable graph file; 3 the server is unreachable, went away or timed out;
130 interrupted (Ctrl-C); 143 terminated (SIGTERM). Both cancel the running pipeline first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from .connection import DEFAULT_URL, PipelinesClient
from .display import (
    LiveView,
    OutputFormat,
    format_announcement,
    format_item_error,
    format_registry,
    format_report,
    format_result,
    print_error,
)
from .errors import (
    ClientError,
    ConnectError,
    DisconnectedError,
    GraphFileError,
    PipelineFailedError,
    ProtocolError,
    RemoteError,
    RequestTimeoutError,
    format_error,
)
from .graphs import demo_graph, demo_strings, load_graph
from .run import Run
from .types import Announcement

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "main",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

_FRAME_SECONDS = 0.1  # live view refresh period
_MAX_PENDING_LINES = 5000  # results held for the next frame at most


def _build_parser() -> argparse.ArgumentParser:
    # Connection options are accepted before or after the command; on the subcommands their
    # default is SUPPRESS so a value given before the command is not overwritten.
    def connection_options(p: argparse.ArgumentParser, *, top: bool) -> None:
        default = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
        p.add_argument(
            "--url",
            default=default(os.environ.get("PIPELINES_URL", DEFAULT_URL)),
            help=f"server URL (env PIPELINES_URL; default {DEFAULT_URL})",
        )
        p.add_argument(
            "--token",
            default=default(os.environ.get("PIPELINES_TOKEN")),
            help="access token, when the server requires one (env PIPELINES_TOKEN)",
        )
        p.add_argument(
            "--connect-timeout",
            type=float,
            default=default(5.0),
            metavar="SECONDS",
            help="give up connecting after this long (default 5)",
        )
        p.add_argument("-v", "--verbose", action="count", default=default(0), help="log more (repeatable)")

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--format",
            choices=("text", "json"),
            default="text",
            help="results as 'node: value' lines (text) or JSON lines {node, seq, value}",
        )
        p.add_argument(
            "--results",
            choices=("batch", "recv"),
            default="batch",
            help="results mode: batched 'results' events (default) or legacy 'recv' events",
        )
        p.add_argument("--window", type=int, help="credit window (results in flight)")
        p.add_argument(
            "--timeout",
            type=float,
            metavar="SECONDS",
            help="cancel the pipeline if it runs longer than this",
        )
        p.add_argument("-q", "--quiet", action="store_true", help="print no results, only the end")
        p.add_argument(
            "--no-progress",
            action="store_true",
            help="no live progress view, even on a terminal",
        )

    parser = argparse.ArgumentParser(
        prog="pipelines-client",
        description="Talk to a pipelines server: run graphs, validate them, list coroutines.",
        epilog="Exit codes: 0 ok; 1 pipeline failed or graph invalid; 2 usage or file error; "
        "3 server unreachable or gone; 130 interrupted; 143 terminated.",
    )
    connection_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the original demo graph on random hex strings")
    p.add_argument("--count", type=int, default=5, help="how many strings (default 5)")
    run_options(p)
    connection_options(p, top=False)

    p = sub.add_parser("run", help="run a graph from a JSON or YAML file and print its results")
    p.add_argument("file", help="graph file (.json, .yaml or .yml)")
    run_options(p)
    connection_options(p, top=False)

    p = sub.add_parser("validate", help="check a graph file against the server's registry")
    p.add_argument("file", help="graph file (.json, .yaml or .yml)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    connection_options(p, top=False)

    p = sub.add_parser("registry", help="list the coroutines the server can run")
    p.add_argument("--format", choices=("text", "json"), default="text")
    connection_options(p, top=False)
    return parser


def _client(args: argparse.Namespace) -> PipelinesClient:
    return PipelinesClient(args.url, token=args.token, connect_timeout=args.connect_timeout,
                           on_announce=_print_announcement)


def _print_announcement(item: Announcement) -> None:
    print(format_announcement(item), file=sys.stderr, flush=True)


async def _consume(run: Run, args: argparse.Namespace, fmt: OutputFormat) -> None:
    """Print results as they arrive: plainly, or above a live view on a terminal."""
    show_node = not (run.info and len(run.info.outputs) == 1)
    if not sys.stdout.isatty() or args.no_progress:
        seen_errors = 0
        async for item in run:
            if not args.quiet:
                print(format_result(item, fmt, show_node=show_node))
                if not run.ready_count:
                    sys.stdout.flush()  # stream: nothing else to print right now
            if run.error_count != seen_errors:
                seen_errors = _print_new_errors(run, seen_errors)
        sys.stdout.flush()
        _print_new_errors(run, seen_errors)
        return
    # On a terminal every print redraws the live view: print results in blocks, a few
    # times a second, and redraw the counters with them.
    pending: list[str] = []
    console = Console(highlight=False)
    with LiveView(console, run) as view:

        def flush() -> None:
            if pending:
                view.print_line("\n".join(pending))
                pending.clear()
            view.refresh()

        async def redraw() -> None:
            while True:
                await asyncio.sleep(_FRAME_SECONDS)
                flush()

        redraw_task = asyncio.get_running_loop().create_task(redraw())
        try:
            async for item in run:
                if not args.quiet:
                    pending.append(format_result(item, fmt, show_node=show_node))
                    if len(pending) >= _MAX_PENDING_LINES:
                        flush()
        finally:
            redraw_task.cancel()
            await asyncio.wait({redraw_task})
            flush()  # the last results, and the final counters, whatever ended the run
    _print_new_errors(run, 0)


def _print_new_errors(run: Run, seen: int) -> int:
    """Print the item errors that arrived since ``seen`` (the last few, if many)."""
    new = run.error_count - seen
    for payload in list(run.errors)[-min(new, len(run.errors)) :] if new else []:
        print(format_item_error(payload), file=sys.stderr)
    return run.error_count


async def _run_graph(spec: dict[str, Any], args: argparse.Namespace) -> int:
    fmt: OutputFormat = args.format
    async with _client(args) as client:
        run = await client.submit(spec, results=args.results, window=args.window)
        try:
            async with asyncio.timeout(args.timeout):
                await _consume(run, args, fmt)
        except TimeoutError:
            async with asyncio.timeout(5):
                report = await run.cancel()
            print(format_report(report), file=sys.stderr)
            print_error(f"timed out after {args.timeout:g} s; the pipeline was cancelled")
            return EXIT_FAILED
        except PipelineFailedError as exc:
            if exc.report is not None:
                print(format_report(exc.report, error_count=run.error_count), file=sys.stderr)
            print_error(str(exc))
            return EXIT_FAILED
        except asyncio.CancelledError:
            # Ctrl-C or SIGTERM: stop the pipeline before the connection closes, then unwind.
            with contextlib.suppress(ClientError, TimeoutError):
                async with asyncio.timeout(2):
                    report = await run.cancel()
                print(format_report(report, error_count=run.error_count), file=sys.stderr)
            raise
        report = await run.wait()
        print(format_report(report, error_count=run.error_count), file=sys.stderr)
        if report.ok:
            return EXIT_OK
        if report.error:
            print_error(format_error(report.error))
        return EXIT_FAILED


async def _cmd_demo(args: argparse.Namespace) -> int:
    if args.count < 1:
        print_error("--count must be at least 1")
        return EXIT_USAGE
    return await _run_graph(demo_graph(demo_strings(args.count)), args)


async def _cmd_run(args: argparse.Namespace) -> int:
    return await _run_graph(load_graph(args.file), args)


async def _cmd_validate(args: argparse.Namespace) -> int:
    spec = load_graph(args.file)
    async with _client(args) as client:
        try:
            outputs = await client.validate(spec)
        except RemoteError as exc:
            if args.format == "json":
                print(json.dumps({"ok": False, "error": exc.error}))
            else:
                print(f"invalid: {args.file}")
                print("  " + str(exc).replace("\n", "\n  "))
            return EXIT_FAILED
    if args.format == "json":
        print(json.dumps({"ok": True, "outputs": outputs}))
    else:
        print(f"ok: {args.file} is valid (outputs: {', '.join(outputs) or 'none'})")
    return EXIT_OK


async def _cmd_registry(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        entries = await client.registry()
    if args.format == "json":
        print(
            json.dumps(
                [
                    {"name": e.name, "kind": e.kind, "doc": e.doc, "args_schema": e.args_schema}
                    for e in entries
                ],
                indent=2,
            )
        )
    else:
        print(format_registry(entries))
    return EXIT_OK


_COMMANDS = {
    "demo": _cmd_demo,
    "run": _cmd_run,
    "validate": _cmd_validate,
    "registry": _cmd_registry,
}


async def _dispatch(args: argparse.Namespace) -> int:
    # SIGTERM ends the command like Ctrl-C does: the running pipeline is cancelled first.
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await _COMMANDS[args.command](args)
    except GraphFileError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    except (ConnectError, DisconnectedError, RequestTimeoutError) as exc:
        print_error(str(exc))
        return EXIT_UNREACHABLE
    except TimeoutError:
        print_error(f"{args.url} did not answer in time")
        return EXIT_UNREACHABLE
    except (RemoteError, ProtocolError) as exc:
        print_error(str(exc))
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pipelines-client`` and ``python -m client``; returns the exit code."""
    args = _build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 3:
        # socket.io's own chatter stays quiet unless asked for with -vvv.
        for name in ("socketio", "engineio"):
            logging.getLogger(name).setLevel(max(level, logging.WARNING))
    try:
        return asyncio.run(_dispatch(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        # stdout closed early (e.g. piped into `head`): not an error worth a traceback.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
