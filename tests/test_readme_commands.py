"""Every command the README shows works as printed, on a fresh `git clone` of the repository.

The clone gets its own .venv (the project installed editable with --no-deps; its dependencies
come from the test's environment through a .pth line, and node_modules is linked, so nothing
is downloaded again) and the set-up scripts see it as installed. Commands run with that .venv's
bin first on PATH, as after `source .venv/bin/activate`. Servers never take the README's ports:
each gets a free one, through PIPELINES_PORT (or in place of the README's 9000) and
PIPELINES_URL for the client. If the README gains a command, this test fails until it is run here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from serverutil import free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

#: The commands in the README's bash/console blocks (comments and `$ ` prompts removed).
EXPECTED = {
    "scripts/serve",
    "scripts/test",
    "python server.py",
    "pipelines-server --port 9000 --max-nodes 32",
    "PIPELINES_TOKEN=s3cret python server.py",
    "python server.py --help",
    "pipelines-client demo",
    "pipelines-client run examples/graphs/range.yaml --quiet",
    "pipelines-client validate examples/graphs/demo.json",
}


def readme_commands() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = set()
    for lang, block in re.findall(r"```(bash|console)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if lang == "console":
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            line = line.split("  #")[0].strip()
            if line:
                commands.add(line)
    return commands


def test_the_readme_shows_the_commands_this_test_runs() -> None:
    assert readme_commands() == EXPECTED


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("git and a git checkout are needed to clone the repository under CI")
        pytest.skip("git or a git checkout is missing: cannot clone the repository")
    where = tmp_path_factory.mktemp("clone") / "pipelines"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True, timeout=120)
    # The set-up scripts re-install when these are newer than their stamp: make them old.
    for name in ("pyproject.toml", "setup.py", "package-lock.json"):
        os.utime(where / name, (1, 1))
    venv = where / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "-q", "-e", str(where)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for extras in ("server,client", "server,client,test,bench"):
        (venv / f".installed-{extras}").touch()
    for tool in ("ruff", "mypy"):  # console scripts of the test extra, for scripts/check
        (venv / "bin" / tool).symlink_to(Path(sys.executable).parent / tool)
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", where / ".mypy_cache")
    if (ROOT / "node_modules").is_dir():
        (where / "node_modules").symlink_to(ROOT / "node_modules")
    return where


def _env(clone: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{clone / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(clone / ".venv")
    return env | extra


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - a local test server
        return r.status, r.read().decode()


@contextmanager
def _serving(command: str, clone: Path, port: int, **env: str) -> Iterator[subprocess.Popen[str]]:
    """Run a server command (through the shell, as typed) until /healthz answers on `port`."""
    proc = subprocess.Popen(command, shell=True, cwd=clone, env=_env(clone, **env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                assert proc.stdout is not None
                pytest.fail(f"{command!r} exited {proc.returncode}: {proc.stdout.read()}")
            assert time.monotonic() < deadline, f"{command!r} did not come up"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _run(command: str, clone: Path, **env: str) -> str:
    """Run `command` through the shell; its stdout and stderr, one after the other."""
    done = subprocess.run(command, shell=True, cwd=clone, env=_env(clone, **env), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{command!r} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_scripts_serve_ends_with_the_page_and_a_client_command_that_works(clone: Path) -> None:
    port = free_port()
    plain = os.environ.get("PATH", "")  # a fresh clone: no .venv activated
    command = f"scripts/serve --host 127.0.0.1 --port {port} --demo-sleep-scale 0.05"
    with _serving(command, clone, port, PATH=plain) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or "the client demo: " not in lines[-1]:
            line = proc.stdout.readline()
            assert line, "scripts/serve ended its output without the client demo command:\n" + "".join(lines)
            lines.append(line)
        assert lines[-2].rstrip().endswith(f"the page: http://localhost:{port}/"), lines
        assert _get(f"http://localhost:{port}/")[0] == 200
        demo = lines[-1].split("the client demo: ", 1)[1].strip()
        out = _run(demo, clone, PATH=plain)  # as printed
    assert "done: completed, 10 results" in out.splitlines()[-1], out  # the original demo: 10 results


def test_scripts_test_runs_pytest(clone: Path) -> None:
    # The whole suite is what CI runs through this very script; here, one small file of it.
    out = _run("scripts/test -q -p no:cacheprovider tests/test_docs.py", clone)
    assert re.search(r"\d+ passed", out), out


def test_server_commands(clone: Path) -> None:
    port = free_port()
    with _serving("python server.py", clone, port, PIPELINES_PORT=str(port), PIPELINES_HOST="127.0.0.1"):
        assert _get(f"http://127.0.0.1:{port}/")[0] == 200
    port = free_port()
    with _serving(f"pipelines-server --port {port} --max-nodes 32", clone, port, PIPELINES_HOST="127.0.0.1"):
        status, body = _get(f"http://127.0.0.1:{port}/api/registry")
        assert status == 200 and "Number.square" in body
    port = free_port()
    with _serving("PIPELINES_TOKEN=s3cret python server.py", clone, port, PIPELINES_PORT=str(port),
                  PIPELINES_HOST="127.0.0.1"):
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    out = _run("python server.py --help", clone)
    assert "--max-nodes" in out and "PIPELINES_MAX_NODES" in out


def test_client_commands_and_the_socketio_example(clone: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _serving("python server.py", clone, port, PIPELINES_PORT=str(port), PIPELINES_HOST="127.0.0.1",
                  PIPELINES_DEMO_SLEEP_SCALE="0.05"):
        out = _run("pipelines-client demo", clone, PIPELINES_URL=url)
        assert "done: completed, 10 results" in out.splitlines()[-1], out
        out = _run("pipelines-client run examples/graphs/range.yaml --quiet", clone, PIPELINES_URL=url)
        assert re.fullmatch(r"done: completed, 5000 results in [\d.]+ s \(pipeline \w+\)\n", out), out
        out = _run("pipelines-client validate examples/graphs/demo.json", clone, PIPELINES_URL=url)
        assert out == "ok: examples/graphs/demo.json is valid (outputs: out)\n"
        # The service section's python example, pointed at this server.
        section = (clone / "README.md").read_text(encoding="utf-8").split("<!-- section:server -->")[1]
        code = re.search(r"```python\n(.*?)```", section, re.S)
        assert code is not None
        script = tmp_path / "readme_sio_example.py"  # outside the clone: scripts/check lints it
        script.write_text(code.group(1).replace("http://localhost:8080", url))
        out = _run(f"python {script}", clone)
    lines = out.splitlines()
    assert lines[0].startswith("{'ok': True") and lines[1:] == ["0", "1", "4", "9", "16", "completed 5"], out



def test_scripts_check_fails_on_a_ruff_or_mypy_finding(clone: Path) -> None:
    """scripts/check (run by scripts/test and so by CI) fails on findings of either tool."""
    probe = clone / "server" / "lint_probe.py"
    try:
        probe.write_text("import os\n")  # ruff F401: imported but unused
        done = subprocess.run("scripts/check", shell=True, cwd=clone, env=_env(clone), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode != 0 and "F401" in done.stdout + done.stderr, done
        probe.write_text('def untyped(x):\n    return x\n')  # mypy --strict: no annotation
        done = subprocess.run("scripts/check", shell=True, cwd=clone, env=_env(clone), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode != 0, done
        assert "lint_probe.py" in done.stdout and "missing a type annotation" in done.stdout, done
    finally:
        probe.unlink()
