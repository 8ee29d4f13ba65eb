"""Entry point: `python server.py`, `python -m server` or `pipelines-server` [flags]."""

from __future__ import annotations

import argparse
import logging
import types
import typing
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import SecretStr, ValidationError

from .app import create_app
from .keys import SESSIONS
from .settings import Settings

__all__ = ["CONNECTION_GRACE", "main", "build_parser", "settings_from_args"]

logger = logging.getLogger("server")

#: Seconds aiohttp waits for connections still open after the on_shutdown hook.
CONNECTION_GRACE = 1.0


def _flag_type(annotation: Any) -> tuple[Any, str]:
    """argparse type and metavar for a Settings annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
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
    parser = argparse.ArgumentParser(
        prog="pipelines-server",
        description="The pipelines socket.io service. Every flag also reads from an environment "
        "variable PIPELINES_<NAME>; a flag wins over the environment.",
        argument_default=argparse.SUPPRESS,
    )
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = f"PIPELINES_{name.upper()}"
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else ",".join(default) if isinstance(default, list) \
            else default
        text = f"{field.description} [env {env}; default {shown}]"
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=text)
        else:
            kind, metavar = _flag_type(field.annotation)
            parser.add_argument(flag, dest=name, type=kind, metavar=metavar, help=text)
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the environment, overridden by the flags in `argv`."""
    parser = build_parser()
    overrides = vars(parser.parse_args(argv))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        # One line (no usage dump): the setting and what is wrong with it; exit status 2.
        parser.exit(2, f"{parser.prog}: error: " + "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        ) + " (see --help)\n")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, configure logging, serve until SIGINT/SIGTERM, exit 0."""
    settings = settings_from_args(argv)
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level > logging.DEBUG:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = create_app(settings)
    logger.info("%d coroutines registered; test coroutines %s", len(app[SESSIONS].registry),
                "ON" if settings.test_coroutines else "off")
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        # Our on_shutdown hook has told and disconnected every session by the time aiohttp
        # waits for open connections; a websocket whose peer does not close it is not worth
        # more than a moment after that.
        shutdown_timeout=CONNECTION_GRACE,
        print=lambda text: logger.info("%s", " ".join(text.split())),
        access_log=logging.getLogger("aiohttp.access"),
    )
    logger.info("stopped")


if __name__ == "__main__":
    main()
