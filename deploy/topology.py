"""The several-servers topology, stated once: which processes, with which command lines.

`scripts/cluster` starts these commands on one machine; `docker-compose.yml` runs the same
commands in containers (tests/test_cluster_compose.py holds the two to each other). Hosts and
ports are parameters: 127.0.0.1 and free ports for the script, service names for compose.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

__all__ = [
    "NATS_PORT", "NGINX_TEMPLATE", "POOL", "REDIS_PORT", "SERVER_PORT", "SERVICES",
    "nats_argv", "nats_url", "nginx_snippet", "redis_argv", "redis_url", "server_argv",
    "upstream_servers", "worker_argv",
]

ROOT = Path(__file__).resolve().parent.parent
#: The nginx server block both deployments use (rendered by the script, envsubst in compose).
NGINX_TEMPLATE = ROOT / "deploy" / "pipelines.conf.template"

#: Every service of the topology, in start order (stop goes the other way).
SERVICES = ("nats", "redis", "server", "worker", "nginx")
#: The worker pool the topology starts (one pool; `--pool` of each worker).
POOL = "cpu"
#: Default ports inside compose (the script picks free ports instead).
NATS_PORT, REDIS_PORT, SERVER_PORT = 4222, 6379, 8080


def nats_argv(port: int, store_dir: str, monitor_port: int | None = None,
              host: str = "0.0.0.0") -> list[str]:
    """nats-server with JetStream on a file store; optional HTTP monitoring (health)."""
    argv = ["nats-server", "-a", host, "-p", str(port), "-js", "-sd", store_dir]
    if monitor_port is not None:
        argv += ["-m", str(monitor_port)]
    return argv


def redis_argv(port: int, host: str = "0.0.0.0") -> list[str]:
    """redis-server for the socket.io manager: pub/sub only, nothing persisted."""
    return ["redis-server", "--bind", host, "--port", str(port), "--save", "",
            "--appendonly", "no", "--protected-mode", "no"]


def nats_url(host: str, port: int = NATS_PORT) -> str:
    return f"nats://{host}:{port}"


def redis_url(host: str, port: int = REDIS_PORT) -> str:
    return f"redis://{host}:{port}/0"


def server_argv(port: int, redis: str, nats: str, host: str = "0.0.0.0") -> list[str]:
    """One pipelines server: the socket.io manager on Redis, pool nodes over NATS."""
    return ["python", "server.py", "--host", host, "--port", str(port),
            "--redis-url", redis, "--nats-url", nats]


def worker_argv(nats: str, pool: str = POOL) -> list[str]:
    """One worker of `pool` (the entry point `pipelines-worker`, or `python -m server.worker`)."""
    return ["pipelines-worker", "--pool", pool, "--nats", nats]


def upstream_servers(addresses: list[str]) -> str:
    """The `${UPSTREAM_SERVERS}` of the template for `host:port` addresses."""
    return " ".join(f"server {a};" for a in addresses)


def nginx_snippet(listen_port: int, addresses: list[str]) -> str:
    """The template rendered as the script does (compose: the nginx image's envsubst)."""
    return Template(NGINX_TEMPLATE.read_text()).safe_substitute(
        LISTEN_PORT=str(listen_port), UPSTREAM_SERVERS=upstream_servers(addresses))
