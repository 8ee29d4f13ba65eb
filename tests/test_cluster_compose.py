"""docker-compose.yml describes the topology `scripts/cluster` starts (no Docker daemon here: the
file is parsed and held to deploy/topology.py, which the script uses too), and the server image
never runs as root."""

from __future__ import annotations

import re
import sys
from string import Template
from typing import Any

import pytest
import yaml
from serverutil import ROOT

sys.path.insert(0, str(ROOT / "deploy"))
import topology  # noqa: E402

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
NATS, REDIS = topology.nats_url("nats"), topology.redis_url("redis")


def replicas(service: dict[str, Any]) -> int:
    return int(service.get("deploy", {}).get("replicas", service.get("scale", 1)))


def test_services_are_the_topology() -> None:
    assert tuple(SERVICES) == topology.SERVICES


def test_nats_runs_jetstream_on_a_volume() -> None:
    nats = SERVICES["nats"]
    assert nats["image"].startswith("nats:")
    assert nats["command"] == topology.nats_argv(topology.NATS_PORT, "/data", 8222)
    assert "nats-data:/data" in nats["volumes"]
    assert "nats-data" in COMPOSE["volumes"]


def test_redis_and_servers_and_workers_run_the_script_commands() -> None:
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["redis"]["command"] == topology.redis_argv(topology.REDIS_PORT)
    server = SERVICES["server"]
    assert server["command"] == topology.server_argv(topology.SERVER_PORT, REDIS, NATS)
    assert replicas(server) == 2
    assert "ports" not in server  # reached through nginx only
    worker = SERVICES["worker"]
    assert worker["command"] == topology.worker_argv(NATS)
    assert replicas(worker) == 2
    assert worker["image"] == server["image"]
    for name in ("server", "worker"):
        assert "nats" in SERVICES[name]["depends_on"]
    assert set(server["depends_on"]) == {"nats", "redis"}


def test_nginx_uses_the_template_the_script_renders() -> None:
    nginx = SERVICES["nginx"]
    assert nginx["image"].startswith("nginx:")
    mount = "./deploy/pipelines.conf.template:/etc/nginx/templates/pipelines.conf.template:ro"
    assert mount in nginx["volumes"]
    env = nginx["environment"]
    # Every ${VAR} of the template comes from the service's environment (the image's envsubst).
    needed = set(re.findall(r"\$\{(\w+)\}", topology.NGINX_TEMPLATE.read_text()))
    assert needed == {"LISTEN_PORT", "UPSTREAM_SERVERS"} <= set(env)
    assert env["UPSTREAM_SERVERS"] == topology.upstream_servers([f"server:{topology.SERVER_PORT}"])
    assert nginx["ports"] == [f"{env['LISTEN_PORT']}:{env['LISTEN_PORT']}"]
    rendered = Template(topology.NGINX_TEMPLATE.read_text()).safe_substitute(env)
    assert "${" not in rendered
    assert rendered == topology.nginx_snippet(int(env["LISTEN_PORT"]),
                                              [f"server:{topology.SERVER_PORT}"])
    assert "proxy_set_header Upgrade $http_upgrade;" in rendered
    assert "hash $pipelines_route consistent;" in rendered


@pytest.mark.parametrize("name", topology.SERVICES)
def test_every_service_has_a_healthcheck(name: str) -> None:
    check = SERVICES[name].get("healthcheck", {})
    assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_server_image_does_not_run_as_root() -> None:
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [words[1] for words in lines if words and words[0] == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(words[:1] == ["RUN"] and re.search(r"\.\[[a-z,]*redis", " ".join(words)) for words in lines)

