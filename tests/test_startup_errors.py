"""Start-up: the last lines say where the page is; failures are one line, no traceback.

Each case starts `python server.py` (or the set-up script) as a user would and reads what it
prints: a port in use, a bad environment variable (named as the variable), an unknown log
level, missing page files, and npm missing when the set-up needs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.__main__ import _announce

ROOT = Path(__file__).resolve().parent.parent


def _start(*flags: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[int, list[str]]:
    """Run `python server.py` expecting it to fail at start-up; its exit code and stderr lines."""
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINES_")}
    proc_env.update({"PIPELINES_HOST": "127.0.0.1", "PIPELINES_PORT": "0"} | (env or {}))
    done = subprocess.run(
        [sys.executable, "server.py", *flags], cwd=cwd, env=proc_env, capture_output=True,
        text=True, timeout=60,
    )
    assert done.returncode != 0, f"server.py started instead of failing:\n{done.stderr}"
    return done.returncode, done.stderr.strip().splitlines()


def _one_error_line(lines: list[str]) -> str:
    """The single error line (log lines from before the failure are allowed, not a traceback)."""
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    errors = [line for line in lines if line.startswith("pipelines-server: error: ")]
    assert len(errors) == 1, "\n".join(lines)
    return errors[0]


def test_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = _start("--port", str(port))
    assert code == 1
    line = _one_error_line(lines)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "address already in use" in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PIPELINES_MAX_NODES", "many"), ("PIPELINES_PORT", "-5"), ("PIPELINES_TEST_COROUTINES", "maybe")],
)
def test_bad_environment_variable_is_named(variable: str, value: str) -> None:
    code, lines = _start(env={variable: value})
    assert code == 2
    assert _one_error_line(lines).startswith(f"pipelines-server: error: {variable}: ")


def test_bad_flag_is_named_as_the_flag() -> None:
    code, lines = _start("--max-nodes", "0", env={"PIPELINES_MAX_NODES": "5"})
    assert code == 2
    assert _one_error_line(lines).startswith("pipelines-server: error: --max-nodes: ")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_unknown_log_level(how: str) -> None:
    flags, env = (["--log-level", "loud"], {}) if how == "flag" else ([], {"PIPELINES_LOG_LEVEL": "loud"})
    code, lines = _start(*flags, env=env)
    assert code == 2
    line = _one_error_line(lines)
    assert ("--log-level" if how == "flag" else "PIPELINES_LOG_LEVEL") in line
    assert "unknown log level 'loud'" in line and "DEBUG" in line


def test_missing_page_files(tmp_path: Path) -> None:
    """A checkout whose vendored browser files are gone."""
    for folder in ("pipelines", "server", "static"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("vendor", "__pycache__"))
    shutil.copy(ROOT / "server.py", tmp_path)
    code, lines = _start(cwd=tmp_path)
    assert code == 1
    line = _one_error_line(lines)
    assert "vendor is missing" in line and "scripts/vendor" in line


def test_setup_script_without_npm(tmp_path: Path) -> None:
    """scripts/_venv.sh asked for the npm packages on a machine without npm."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "_venv.sh", tmp_path / "scripts")
    (tmp_path / "scripts" / "needs-npm").write_text(
        'source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" "" npm\necho "should not get here"\n'
    )
    for name in ("pyproject.toml", "setup.py", "package-lock.json"):
        shutil.copy2(ROOT / name, tmp_path)
    # An installed .venv (the stamp is newer than pyproject.toml), so only npm is missing.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / ".venv" / ".installed-base").touch()
    tools = tmp_path / "bin"  # a PATH with the few tools the script needs, and no npm
    tools.mkdir()
    (tools / "python3").symlink_to(sys.executable)
    for tool in ("dirname", "basename"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run([bash, "scripts/needs-npm"], cwd=tmp_path, env={"PATH": str(tools)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert "should not get here" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scripts/needs-npm: npm is missing"), lines


@pytest.mark.parametrize(
    ("banner", "url"),
    [
        ("======== Running on http://0.0.0.0:8080 ========\n(Press CTRL+C to quit)", "http://localhost:8080"),
        ("======== Running on http://[::]:9000 ========", "http://localhost:9000"),
        ("======== Running on http://10.1.2.3:8081 ========", "http://10.1.2.3:8081"),
        ("======== Running on http://[fe80::1]:8082 ========", "http://[fe80::1]:8082"),
    ],
)
def test_start_up_output_ends_with_the_page_and_the_client_demo(
    caplog: pytest.LogCaptureFixture, banner: str, url: str
) -> None:
    caplog.set_level("INFO", logger="server")
    _announce(banner)
    lines = [r.getMessage() for r in caplog.records if r.name == "server"]
    assert lines[-2] == f"the page: {url}/"
    assert lines[-1].startswith("the client demo: ") and lines[-1].endswith(f" demo --url {url}")
