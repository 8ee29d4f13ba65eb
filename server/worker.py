"""A worker of a pool: `pipelines-worker --pool cpu --nats nats://host:4222` or
`python -m server.worker ...`. It runs the service's registry (built with the same flags as the
servers'), announces its hash, and serves the nodes placed on its pool until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from pipelines.remote.errors import BrokerUnavailable
from pipelines.remote.worker import Worker

from .registries import LoadedCoroutines, RegistryLoadError, load_coroutines
from .remote import remote_config
from .settings import Settings

__all__ = ["main", "build_parser", "worker_registry"]

logger = logging.getLogger("server.worker")


def worker_registry(settings: Settings) -> LoadedCoroutines:
    """The registry a worker runs: composed exactly as the server composes its own
    (`server.registries.load_coroutines`: built-ins, `--coroutines`, entry points)."""
    return load_coroutines(settings)


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="pipelines-worker",
        description="Serve the nodes placed on one worker pool. Limits not given as flags "
        "(ack wait, edge cap, de-dup window...) come from the same PIPELINES_* environment "
        "variables as the server's, and must match them.",
    )
    p.add_argument("--pool", required=True, help="the pool to serve")
    p.add_argument("--nats", default=env("PIPELINES_NATS_URL", "nats://127.0.0.1:4222"),
                   help="NATS server(s), comma separated [env PIPELINES_NATS_URL]")
    p.add_argument("--concurrency", type=int, default=64, help="messages held at once")
    p.add_argument("--name", default=None, help="the worker's name (default: host-pid)")
    p.add_argument("--test-coroutines", action="store_true",
                   default=env("PIPELINES_TEST_COROUTINES", "").lower() in ("1", "true", "yes"),
                   help="register the faulty Test.* coroutines (tests only)")
    p.add_argument("--demo-sleep-scale", type=float,
                   default=float(env("PIPELINES_DEMO_SLEEP_SCALE", "1.0")),
                   help="factor on the demo coroutines' sleeps")
    p.add_argument("--coroutines", action="append", default=None, metavar="MODULE:ATTR",
                   help="your registries, as on the server (repeatable) [env PIPELINES_COROUTINES]")
    p.add_argument("--no-builtin-coroutines", dest="builtin_coroutines", action="store_false",
                   default=None, help="serve only your own coroutines, as on the server")
    p.add_argument("--ack-wait", type=float, default=None, help="seconds [env PIPELINES_ACK_WAIT]")
    p.add_argument("--max-deliver", type=int, default=None,
                   help="deliveries before worker_crashed [env PIPELINES_MAX_DELIVER]")
    p.add_argument("--log-level", default=env("PIPELINES_LOG_LEVEL", "INFO"))
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, object] = {"nats_url": args.nats,
                                    "demo_sleep_scale": args.demo_sleep_scale,
                                    "test_coroutines": args.test_coroutines}
    if args.ack_wait is not None:
        overrides["ack_wait"] = args.ack_wait
    if args.max_deliver is not None:
        overrides["max_deliver"] = args.max_deliver
    if args.coroutines is not None:
        overrides["coroutines"] = args.coroutines
    if args.builtin_coroutines is not None:
        overrides["builtin_coroutines"] = args.builtin_coroutines
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `--coroutines` finds modules here, as the server does
    settings = Settings(**overrides)  # type: ignore[arg-type]
    try:
        loaded = worker_registry(settings)
    except RegistryLoadError as exc:
        print(f"pipelines-worker: error: {exc}", file=sys.stderr)  # noqa: T201 - before logging
        raise SystemExit(2) from None
    registry = loaded.registry
    config = remote_config(settings, registry)
    assert config is not None
    worker = Worker(registry, args.pool, config, name=args.name, concurrency=args.concurrency)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        async with loaded.running():  # the plugins' shared resources, as on the server
            await worker.run()

    try:
        asyncio.run(serve())
    except BrokerUnavailable as exc:
        logger.error("%s", exc)
        raise SystemExit(2) from None
    logger.info("worker %s stopped", worker.name)


if __name__ == "__main__":
    main()
