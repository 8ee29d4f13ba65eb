"""Helpers for the several-servers tests: required binaries and a redis-server on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from serverutil import free_port

__all__ = ["redis_server", "require_binary", "wait_port"]


def require_binary(name: str, package: str | None = None) -> str:
    """The path of `name`; skips the test if it is missing, or fails under CI=true."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None)
    if path is None:
        reason = (f"{name} is missing (apt-get install {package or name}; "
                  "scripts/test installs it)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"cluster tests must run under CI: {reason}")
        pytest.skip(reason)
    return path


def wait_port(port: int, within: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until 127.0.0.1:`port` accepts TCP connections."""
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"exited with {proc.returncode} before listening") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on port {port} after {within} s") from None
            time.sleep(0.02)


@contextmanager
def redis_server(port: int | None = None) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A throw-away redis-server on 127.0.0.1 (no persistence); yields (process, port)."""
    binary = require_binary("redis-server")
    port = port or free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc=proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
