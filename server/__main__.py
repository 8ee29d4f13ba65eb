"""Entry point: `python server.py`, `python -m server` or `pipelines-server` [flags]."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import re
import shutil
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from .app import create_app
from .keys import SESSIONS
from .registries import RegistryLoadError, load_coroutines
from .settings import Settings
from .static_files import StaticFilesMissing

__all__ = ["CONNECTION_GRACE", "PROG", "main", "build_parser", "settings_from_args"]

logger = logging.getLogger("server")

#: Seconds aiohttp waits for connections still open after the on_shutdown hook.
CONNECTION_GRACE = 1.0

#: The name start-up errors begin with.
PROG = "pipelines-server"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block): `PROG: error: ...`."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _fail(message: str, code: int = 1) -> typing.NoReturn:
    """A start-up failure: one line on stderr, no traceback, a non-zero exit."""
    print(f"{PROG}: error: {message}", file=sys.stderr)  # noqa: T201 - before logging exists
    raise SystemExit(code)


def _unwrap(annotation: Any) -> Any:
    """`X` of `X | None` and of `Annotated[X, ...]`."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _flag_type(annotation: Any) -> tuple[Any, str]:
    """argparse type and metavar for a Settings annotation."""
    annotation = _unwrap(annotation)
    if annotation is int:
        return int, "N"
    if annotation is float:
        return float, "SECONDS_OR_N"
    if annotation is SecretStr:
        return str, "SECRET"
    if typing.get_origin(annotation) is list:
        return str, "A,B,..."
    return str, "TEXT"


def build_parser() -> argparse.ArgumentParser:
    """One flag per Settings field (`max_nodes` -> `--max-nodes`)."""
    parser = _Parser(
        prog=PROG,
        description="The pipelines socket.io service. Every flag also reads from an environment "
        "variable PIPELINES_<NAME>; a flag wins over the environment.",
        argument_default=argparse.SUPPRESS,
    )
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = f"PIPELINES_{name.upper()}"
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else (",".join(default) or "none") \
            if isinstance(default, list) else default
        text = f"{field.description} [env {env}; default {shown}]"
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=text)
        elif typing.get_origin(_unwrap(field.annotation)) is list:
            # Repeatable, and each value may itself be comma separated.
            parser.add_argument(flag, dest=name, action="append", metavar="A,B,...", help=text)
        else:
            kind, metavar = _flag_type(field.annotation)
            parser.add_argument(flag, dest=name, type=kind, metavar=metavar, help=text)
    return parser


def _origin(name: str, overrides: dict[str, Any]) -> str:
    """Where a setting's bad value came from: its flag, or its environment variable."""
    return "--" + name.replace("_", "-") if name in overrides else f"PIPELINES_{name.upper()}"


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the environment, overridden by the flags in `argv`.

    A bad value exits with status 2 and one line naming its flag or environment variable.
    """
    parser = build_parser()
    overrides = vars(parser.parse_args(argv))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        parser.error("; ".join(
            f"{_origin('.'.join(str(p) for p in e['loc']), overrides)}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        ))
    except SettingsError as exc:
        # pydantic-settings could not decode an environment variable (a JSON-typed field).
        field = re.search(r'field "(\w+)"', str(exc))
        parser.error(f"{_origin(field.group(1), overrides) if field else 'environment'}: {exc}")


def _event_loop(want_uvloop: bool) -> asyncio.AbstractEventLoop | None:
    """A uvloop event loop when asked for and installed, else None (asyncio's own)."""
    if not want_uvloop:
        logger.info("event loop: asyncio (--no-uvloop)")
        return None
    try:
        import uvloop
    except ImportError:
        logger.info("event loop: asyncio (uvloop is not installed: pip install 'pipelines[uvloop]')")
        return None
    logger.info("event loop: uvloop")
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, configure logging, serve until SIGINT/SIGTERM, exit 0."""
    settings = settings_from_args(argv)
    if "" not in sys.path and os.getcwd() not in sys.path:
        # `--coroutines mypkg.nodes:registry` finds modules in the current directory (as
        # `python server.py` and uvicorn do), also when started as `pipelines-server`.
        sys.path.insert(0, os.getcwd())
    level = logging.getLevelNamesMapping()[settings.log_level]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level > logging.DEBUG:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        loaded = load_coroutines(settings)
    except RegistryLoadError as exc:
        _fail(str(exc), 2)
    try:
        app = create_app(settings, registry=loaded)
    except StaticFilesMissing as exc:
        _fail(str(exc))
    by_source: dict[str, int] = {}
    for source in loaded.sources.values():
        by_source[source] = by_source.get(source, 0) + 1
    for source, count in by_source.items():
        logger.info("coroutines: %d from %s", count, source)
    logger.info("%d coroutines registered; test coroutines %s", len(app[SESSIONS].registry),
                "ON" if settings.test_coroutines else "off")
    try:
        _run(app, settings)
    except OSError as exc:
        # Binding happens inside run_app; anything else it raises is not a start-up failure.
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        _fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc} "
              "(choose another --port / PIPELINES_PORT or --host / PIPELINES_HOST)")
    logger.info("stopped")


def _client_command() -> str:
    """How to start this installation's client, as the user can type it from here."""
    script = Path(sys.executable).parent / "pipelines-client"
    if not script.exists() or shutil.which("pipelines-client") == str(script):
        return "pipelines-client"
    cwd = Path.cwd()
    return str(script.relative_to(cwd)) if script.is_relative_to(cwd) else str(script)


def _announce(text: str) -> None:
    """aiohttp's "Running on URL" banner, then the page's URL and the client demo's command."""
    logger.info("%s", " ".join(text.split()))
    match = re.search(r"https?://\S+", text)
    if match is None:
        return
    parts = urlsplit(match.group(0))
    host = parts.hostname or "localhost"
    if host in ("0.0.0.0", "::", "127.0.0.1", "::1"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    url = f"{parts.scheme}://{host}:{parts.port}"
    logger.info("the page: %s/", url)
    logger.info("the client demo: %s demo --url %s", _client_command(), url)


def _run(app: web.Application, settings: Settings) -> None:
    web.run_app(
        app,
        loop=_event_loop(settings.uvloop),
        host=settings.host,
        port=settings.port,
        # Our on_shutdown hook has told and disconnected every session by the time aiohttp
        # waits for open connections; a websocket whose peer does not close it is not worth
        # more than a moment after that.
        shutdown_timeout=CONNECTION_GRACE,
        print=_announce,
        access_log=logging.getLogger("aiohttp.access"),
    )


if __name__ == "__main__":
    main()
