"""Prometheus counters of one app, in a registry of its own (two apps in a process never mix)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["ServerStats", "CONTENT_TYPE_LATEST"]


class ServerStats:
    """Sessions, pipelines by status, results delivered, errors by code."""

    def __init__(self, *, sessions: Callable[[], int], running: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sessions = Gauge(
            "pipelines_sessions", "Connected socket.io sessions.", registry=self.registry
        )
        self.sessions.set_function(sessions)
        self.running = Gauge(
            "pipelines_running", "Pipelines running now.", registry=self.registry
        )
        self.running.set_function(running)
        self.pipelines = Counter(
            "pipelines_pipelines",
            "Pipelines ended, by final status.",
            ["status"],
            registry=self.registry,
        )
        self.results = Counter(
            "pipelines_results", "Results delivered to clients.", registry=self.registry
        )
        self.errors = Counter(
            "pipelines_errors", "Errors answered to clients, by code.", ["code"],
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "pipelines_connections_refused", "Connections refused, by reason.", ["reason"],
            registry=self.registry,
        )

        self.connections_closed = Counter(
            "pipelines_connections_closed",
            "Connections closed by the server for the client's behaviour, by reason.", ["reason"],
            registry=self.registry,
        )
        self.malformed = Counter(
            "pipelines_malformed_input", "Malformed frames and packets received, by kind.",
            ["kind"], registry=self.registry,
        )
        self.log_suppressed = Counter(
            "pipelines_log_lines_suppressed",
            "Log lines about a client's bad input left out (over its per-address log rate).",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
