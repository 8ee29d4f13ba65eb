"""The console scripts `pipelines-server`, `pipelines-client` and `pipelines-worker`, as installed.

Each imports its package only when run, so that an installation without the package's extra
(`pip install pipelines` is the engine alone) says in one line what to install instead of
printing an ImportError traceback. Nothing here imports a web library.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

__all__ = ["client", "server", "worker"]

_OURS = ("pipelines", "pipelines_server", "pipelines_client", "server", "client")


def _run(package: str, prog: str, extra: str, module_name: str = "__main__") -> NoReturn:
    try:
        module = importlib.import_module(f"{package}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] in _OURS:
            raise
        sys.exit(f"{prog}: error: {exc.name} is missing: install the {extra} extra, "
                 f"pip install 'pipelines[{extra}]'")
    sys.exit(module.main())


def server() -> NoReturn:
    """`pipelines-server`: the service (needs the `server` extra)."""
    _run("pipelines_server", "pipelines-server", "server")


def client() -> NoReturn:
    """`pipelines-client`: the client scripts (need the `client` extra)."""
    _run("pipelines_client", "pipelines-client", "client")


def worker() -> NoReturn:
    """`pipelines-worker`: a worker of a pool (needs the `server` and `nats` extras)."""
    _run("pipelines_server", "pipelines-worker", "server,nats", "worker")
