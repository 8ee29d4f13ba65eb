"""The client scripts as a user runs them: `python -m client ...` in a subprocess, against a
real server on a free port (run in this test's event loop), checking output and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from serverutil import serve, sessions_of, wait_for

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ROOT / "examples" / "graphs"


@dataclass
class Completed:
    code: int
    out: str
    err: str
    seconds: float


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


CLI_TIMEOUT = 60.0


async def cli(*args: str, **env: str) -> Completed:
    """Run `python -m client ARGS` without blocking the loop the server runs in."""
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=ROOT,
        env=_env(**env),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Completed(proc.returncode, out.decode(), err.decode(), time.monotonic() - start)


def assert_no_traceback(result: Completed) -> None:
    assert "Traceback" not in result.err, result.err
    assert "Traceback" not in result.out, result.out


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """A server whose demo coroutines sleep 1/100 of the real 3/2/1 s."""
    async with serve(demo_sleep_scale=0.01) as base:
        yield base


GraphFile = Callable[[str, str], Path]


@pytest.fixture
def graph_file(tmp_path: Path) -> GraphFile:
    """Write a graph file under the test's tmp_path and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


# -- demo ------------------------------------------------------------------------------------


async def test_demo_prints_ten_results_and_exits_0(url: str) -> None:
    result = await cli("demo", "--url", url)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 10
    # coro1 reverses each string s into r; coro2 sends R (upper-cased), coro3 sends "r-s".
    upper = sorted(line for line in lines if "-" not in line)
    mirrored = sorted(line for line in lines if "-" in line)
    assert len(upper) == len(mirrored) == 5
    for line in mirrored:
        left, right = line.split("-")
        assert right == left[::-1]
        assert left.upper() in upper
    assert "done: completed, 10 results" in result.err
    assert_no_traceback(result)


async def test_demo_legacy_recv_mode_and_url_before_command(url: str) -> None:
    result = await cli("--url", url, "demo", "--count", "3", "--results", "recv")
    assert result.code == 0, result.err
    assert len(result.out.splitlines()) == 6
    assert "done: completed, 6 results" in result.err


# -- run -------------------------------------------------------------------------------------


async def test_run_range_example_json_lines_in_order(url: str) -> None:
    result = await cli("run", str(GRAPHS / "range.yaml"), "--format", "json", "--url", url)
    assert result.code == 0, result.err
    rows = [json.loads(line) for line in result.out.splitlines()]
    expected = [n * n * 0.5 + 1 for n in range(0, 10_000, 2)]
    assert [r["seq"] for r in rows] == list(range(len(expected)))
    assert [r["value"] for r in rows] == expected
    assert {r["node"] for r in rows} == {"plus_one"}
    assert "done: completed, 5000 results" in result.err


async def test_run_fanout_zip_example(url: str) -> None:
    result = await cli("run", str(GRAPHS / "fanout_zip.yaml"), "--format", "json", "--url", url)
    assert result.code == 0, result.err
    rows = [json.loads(line) for line in result.out.splitlines()]
    by_node: dict[str, list[object]] = {"row": [], "total": []}
    for r in rows:
        by_node[r["node"]].append(r["value"])
    assert by_node["row"] == [[2 * n, n * n, n + 10] for n in range(20)]
    assert by_node["total"] == [2 * n + n * n + n + 10 for n in range(20)]
    assert [r["seq"] for r in rows] == list(range(40))


async def test_run_pair_with_reverse_example_pairs_strings_with_reverse(url: str) -> None:
    result = await cli("run", str(GRAPHS / "pair_with_reverse.yaml"), "--url", url)
    assert result.code == 0, result.err
    pairs = [json.loads(line) for line in result.out.splitlines()]
    assert len(pairs) == 4
    for original, reverse in pairs:
        assert reverse == original[::-1]


async def test_run_demo_json_example(url: str) -> None:
    result = await cli("run", str(GRAPHS / "demo.json"), "--url", url)
    assert result.code == 0, result.err
    assert len(result.out.splitlines()) == 10


async def test_run_bad_graph_prints_every_problem_plainly(url: str, graph_file: GraphFile) -> None:
    bad = graph_file(
        "bad.yaml",
        "nodes:\n"
        "  src: {coro: Source.range, args: {stop: 3}}\n"
        "  a: {coro: ProcessFunc.coro9}\n"
        "  b: {coro: Text.upper}\n"
        "graph:\n"
        "  src: [a]\n"
        "  a: [b, ghost]\n"
        "  b: [a]\n",
    )
    result = await cli("run", str(bad), "--url", url)
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("error: invalid_spec: ")
    assert "nodes.a.coro: unknown_coroutine:" in result.err
    assert "graph.a.1: unknown_node:" in result.err
    assert "cycle" in result.err
    assert_no_traceback(result)


async def test_run_failing_node_exits_1_with_code_and_node(url: str, graph_file: GraphFile) -> None:
    failing = graph_file(
        "fail.json",
        json.dumps(
            {
                "nodes": {
                    "src": {"coro": "Source.range", "args": {"stop": 50}},
                    "boom": {
                        "coro": "Test.fail_at",
                        "args": {"k": 5},
                        "properties": {"on_error": "fail"},
                    },
                },
                "graph": {"src": ["boom"], "boom": None},
            }
        ),
    )
    result = await cli("run", str(failing), "--url", url)
    assert result.code == 1
    assert "done: failed" in result.err
    assert "error: node_failed: nodes.boom:" in result.err
    assert "planned failure at item 5" in result.err
    assert_no_traceback(result)


async def test_run_skipped_item_error_is_a_warning_not_a_failure(url: str, graph_file: GraphFile) -> None:
    skipping = graph_file(
        "skip.yaml",
        "nodes:\n"
        "  src: {coro: Source.range, args: {stop: 6}}\n"
        "  f: {coro: Test.fail_when, args: {value: 3}}\n"
        "graph: {src: [f], f: null}\n",
    )
    result = await cli("run", str(skipping), "--url", url)
    assert result.code == 0, result.err
    assert result.out.split() == ["0", "1", "2", "4", "5"]
    assert "warning: node_error: nodes.f:" in result.err
    assert "done: completed, 5 results" in result.err
    assert "1 item error" in result.err


async def test_run_timeout_cancels_and_exits_1(url: str, graph_file: GraphFile) -> None:
    hanging = graph_file(
        "hang.yaml",
        "nodes:\n"
        "  src: {coro: Source.range, args: {stop: 5}}\n"
        "  h: {coro: Test.hang, args: {k: 2}}\n"
        "graph: {src: [h], h: null}\n",
    )
    result = await cli("run", str(hanging), "--timeout", "1", "--url", url)
    assert result.code == 1
    assert result.out.split() == ["0", "1"]
    assert "done: cancelled" in result.err
    assert "timed out after 1 s" in result.err
    assert result.seconds < 15


@pytest.mark.parametrize(
    ("sig", "code", "word"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")]
)
async def test_signal_cancels_the_pipeline_and_exits(
    url: str, graph_file: GraphFile, sig: str, code: int, word: str
) -> None:
    slow = graph_file(
        "slow.yaml",
        "nodes:\n"
        "  src: {coro: Source.range, args: {stop: 1000}}\n"
        "  slow: {coro: Flow.delay, args: {seconds: 0.05}, properties: {concurrency: 1}}\n"
        "graph: {src: [slow], slow: null}\n",
    )
    app = serve.last_app  # type: ignore[attr-defined]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client",
        "run",
        str(slow),
        "--url",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
        # A shell without job control starts background jobs with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines = [await asyncio.wait_for(proc.stdout.readline(), 30) for _ in range(3)]
    assert lines == [b"0\n", b"1\n", b"2\n"]  # results stream as they come
    proc.send_signal(getattr(signal, sig))
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == code
    text = err.decode()
    assert "done: cancelled" in text
    assert text.rstrip().endswith(word)
    assert "Traceback" not in text
    assert 3 + len(out.splitlines()) < 1000
    await wait_for(lambda: sessions_of(app) == 0)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.json", None, "no such file"),
        ("broken.json", '{"nodes": {}, "graph": {,}}', "invalid JSON at line 1 column 25"),
        ("nan.json", '{"nodes": {"a": {"coro": "X", "args": {"n": NaN}}}, "graph": {}}', "NaN"),
        ("dup.json", '{"nodes": {}, "nodes": {}, "graph": {}}', "duplicate key 'nodes'"),
        ("list.yaml", "- 1\n- 2\n", "not list"),
        ("tabs.yaml", "nodes:\n\t- x\n", "invalid YAML at line 2"),
        ("empty.yaml", "graph: {}\n", "missing key(s): nodes"),
    ],
)
async def test_unreadable_graph_file_exits_2(
    graph_file: GraphFile, name: str, text: str | None, message: str
) -> None:
    path = graph_file(name, text) if text is not None else Path("/nonexistent") / name
    # No server needed: the file is read before connecting.
    result = await cli("run", str(path), "--url", "http://127.0.0.1:9")
    assert result.code == 2
    assert result.out == ""
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert_no_traceback(result)


async def in_terminal(*args: str) -> tuple[int, str]:
    """Run `python -m client ARGS` with a pseudo-terminal as stdout and stderr."""
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client",
        *args,
        stdout=slave,
        stderr=slave,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=ROOT,
        env=_env(TERM="xterm-256color", COLUMNS="120", LINES="40"),
    )
    os.close(slave)

    def read_all() -> bytes:
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    try:
        output = (await asyncio.wait_for(asyncio.to_thread(read_all), CLI_TIMEOUT)).decode()
        code = await proc.wait()
    finally:
        os.close(master)
    return code, output


async def test_live_view_on_a_terminal(url: str, graph_file: GraphFile) -> None:
    slow = graph_file(
        "slow.yaml",
        "nodes:\n"
        "  src: {coro: Source.range, args: {stop: 8}}\n"
        "  slow: {coro: Flow.delay, args: {seconds: 0.1}, properties: {concurrency: 1}}\n"
        "graph: {src: [slow], slow: null}\n",
    )
    code, output = await in_terminal("run", str(slow), "--url", url)
    assert code == 0, output
    # The live view: progress (nodes done, results) and the per-node table with counters.
    assert "nodes done" in output
    assert "items/s" in output and "latency ms" in output
    assert "Flow.delay" in output and "Source.range" in output
    assert "\x1b[" in output  # drawn with terminal escapes, not plain lines
    # The live view erases its lines (ESC[2K) before results are printed above it.
    segments = re.split(r"\r?\n|\x1b\[2K", output)
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seg) for seg in segments]
    assert [line for line in lines if line.strip().isdigit()] == [str(n) for n in range(8)]
    assert "done: completed, 8 results" in output


async def test_failure_on_a_terminal_is_plain_too(url: str, graph_file: GraphFile) -> None:
    failing = graph_file(
        "parse.yaml",
        "nodes:\n"
        "  words: {coro: Source.items, args: {items: ['1', 'x']}}\n"
        "  parse: {coro: Number.parse, properties: {on_error: fail}}\n"
        "graph: {words: [parse], parse: null}\n",
    )
    code, output = await in_terminal("run", str(failing), "--url", url)
    assert code == 1
    assert "done: failed" in output
    assert "error: node_failed: nodes.parse:" in output
    assert "Traceback" not in output


async def test_plain_output_when_not_a_terminal(url: str) -> None:
    result = await cli("run", str(GRAPHS / "pair_with_reverse.yaml"), "--url", url)
    assert result.code == 0
    assert "\x1b[" not in result.out + result.err
    assert "nodes done" not in result.out + result.err


# -- validate and registry -------------------------------------------------------------------


async def test_validate_good_and_bad(url: str, graph_file: GraphFile) -> None:
    good = await cli("validate", str(GRAPHS / "fanout_zip.yaml"), "--url", url)
    assert good.code == 0, good.err
    assert good.out.strip() == f"ok: {GRAPHS / 'fanout_zip.yaml'} is valid (outputs: row, total)"

    bad = graph_file(
        "bad.json",
        json.dumps(
            {
                "nodes": {
                    "src": {"coro": "Source.range", "args": {"stop": "ten"}},
                    "out": {"coro": "os.system"},
                },
                "graph": {"src": ["out"], "out": None},
            }
        ),
    )
    result = await cli("validate", str(bad), "--url", url)
    assert result.code == 1
    assert result.out.startswith(f"invalid: {bad}\n  invalid_spec: 2 problems")
    assert "nodes.src.args.stop: invalid_value:" in result.out
    assert "nodes.out.coro: unknown_coroutine:" in result.out
    assert_no_traceback(result)

    as_json = await cli("validate", str(bad), "--url", url, "--format", "json")
    assert as_json.code == 1
    answer = json.loads(as_json.out)
    assert answer["ok"] is False
    assert {e["path"] for e in answer["error"]["errors"]} == {
        "nodes.src.args.stop",
        "nodes.out.coro",
    }


async def test_registry_lists_coroutines_with_arguments(url: str) -> None:
    result = await cli("registry", "--url", url)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    heads = {line.split()[0]: line for line in lines if not line.startswith(" ")}
    assert heads["ProcessFunc.inputcoro"].split()[1] == "source"
    assert heads["Number.add"].split()[1] == "processor"
    assert "Adds n to a number." in heads["Number.add"]
    assert any(line.strip() == "strings_from_client: list[string] (required)" for line in lines)
    assert any(line.strip() == "n: number (default 1)" for line in lines)

    as_json = await cli("registry", "--url", url, "--format", "json")
    entries = json.loads(as_json.out)
    names = {e["name"] for e in entries}
    assert {"ProcessFunc.coro1", "Source.range", "Flow.collect"} <= names
    assert all(set(e) == {"name", "kind", "doc", "args_schema"} for e in entries)


# -- unreachable, refused --------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [["demo"], ["registry"], ["run", str(GRAPHS / "demo.json")]])
async def test_unreachable_server_one_line_exit_3(command: list[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = await cli(*command, "--url", url)
    assert result.code == 3
    assert result.out == ""
    assert result.err.strip().splitlines() == [
        f"error: cannot connect to {url}: connection refused (is the server running on that port?)"
    ]
    assert result.seconds < 5


async def test_silent_server_times_out_within_connect_timeout() -> None:
    # A socket that accepts TCP connections but never answers a byte.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        result = await cli("registry", "--url", url, "--connect-timeout", "1")
    assert result.code == 3
    assert result.err.strip().splitlines() == [f"error: cannot connect to {url}: no answer within 1 s"]
    assert result.seconds < 5


async def test_token_required() -> None:
    async with serve(token="s3cret") as url:
        refused = await cli("registry", "--url", url)
        assert refused.code == 3
        assert refused.err.startswith(f"error: {url} refused the connection: unauthorized")
        assert_no_traceback(refused)
        wrong = await cli("registry", "--url", url, "--token", "nope")
        assert wrong.code == 3
        ok = await cli("registry", "--url", url, PIPELINES_TOKEN="s3cret")
        assert ok.code == 0, ok.err
        assert "Source.range" in ok.out
