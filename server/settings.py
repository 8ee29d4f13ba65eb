"""Every knob of the service in one place: read from PIPELINES_* environment variables.

The command line (`python server.py --help`) offers one flag per field; a flag beats the
environment, which beats the default. Field descriptions double as the `--help` text and the
README settings table.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipelines import SpecLimits

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Settings of the pipelines service (env prefix `PIPELINES_`)."""

    model_config = SettingsConfigDict(
        env_prefix="PIPELINES_", extra="forbid", validate_default=True, frozen=True
    )

    # -- network -------------------------------------------------------------------------
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on (0: any free port).")
    token: SecretStr | None = Field(
        None, description="Shared secret clients must send as auth={'token': ...}; unset: none."
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra browser origins allowed to connect (comma separated; '*' allows any). "
        "The page's own origin is always allowed.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header names the server answers to (comma separated; '*': any); "
        "others get HTTP 421. Unset: localhost / 127.0.0.1 / [::1] when bound to a local "
        "address, any otherwise (DNS rebinding defence).",
    )
    allow_localhost_origins: bool = Field(
        True, description="Also allow browser origins on localhost / 127.0.0.1 / [::1]."
    )
    ping_interval: float = Field(
        20.0, gt=0, description="Seconds between engine.io pings (dead-peer detection)."
    )
    ping_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for a pong before dropping a client."
    )
    shutdown_timeout: float = Field(
        5.0, gt=0, description="Seconds SIGTERM/SIGINT waits for sessions to be told and closed."
    )
    log_level: str = Field("INFO", description="Logging level of the service's loggers.")
    uvloop: bool = Field(
        True, description="Run on uvloop when it is installed (the `uvloop` extra); off: asyncio's "
        "own event loop."
    )

    # -- several servers -----------------------------------------------------------------
    redis_url: str | None = Field(
        None, description="Redis for the socket.io manager (redis://host:port/db): emits that must "
        "reach clients of other servers, at most once; unset: this server alone."
    )
    max_announce_bytes: int = Field(
        4096, ge=1, description="Largest `POST /api/announce` message (bytes of UTF-8)."
    )

    # -- message and spec limits ---------------------------------------------------------
    max_message_bytes: int = Field(
        1_000_000, ge=1024, description="Largest incoming socket.io message / HTTP body (bytes)."
    )
    max_payload_depth: int = Field(
        32, ge=2, le=1000, description="Deepest nesting of lists/objects accepted in a payload."
    )
    max_nodes: int = Field(64, ge=1, description="Most nodes in one graph spec.")
    max_edges: int = Field(256, ge=0, description="Most edges in one graph spec.")
    max_args_bytes: int = Field(65_536, ge=2, description="Largest `args` of one node, as JSON.")
    max_source_items: int = Field(
        100_000, ge=1, description="Most items one source node may emit per run."
    )
    max_item_bytes: int = Field(
        1_000_000, ge=64, description="Largest value a node may pass on (text bytes, nested JSON "
        "size); bigger ones are item errors `item_too_large`."
    )
    max_pipeline_items: int = Field(
        10_000_000, ge=1, description="Most items one pipeline may process, summed over all its "
        "nodes (more: the run fails, `limit_exceeded`)."
    )
    max_inflight_items: int = Field(
        65_536, ge=1, description="Most items a graph's queues and concurrency may hold at once "
        "(more: the spec is refused, `limit_exceeded`)."
    )
    max_concurrency: int = Field(256, ge=1, description="Largest `concurrency` a node may ask for.")
    max_queue_size: int = Field(1024, ge=1, description="Largest `queue_size` a node may ask for.")

    # -- sessions and rates --------------------------------------------------------------
    max_sessions: int = Field(1000, ge=1, description="Most connected sessions (server-wide).")
    max_connections: int = Field(
        1100, ge=1, description="Most engine.io connections, including ones that never join "
        "the namespace (server-wide; refused with HTTP 401)."
    )
    max_connections_per_address: int = Field(
        512, ge=1, description="Most engine.io connections from one client address (more: the "
        "handshake gets HTTP 429, `too_many_connections`)."
    )
    max_sessions_per_address: int = Field(
        512, ge=1, description="Most sessions from one client address (more: refused at connect, "
        "`too_many_sessions`)."
    )
    handshakes_per_second: float = Field(
        200.0, gt=0, description="Sustained engine.io handshake rate per client address (more: "
        "HTTP 429, `rate_limited`)."
    )
    handshake_burst: int = Field(400, ge=1, description="Burst allowance of that rate.")
    handshake_timeout: float = Field(
        5.0, gt=0, description="Seconds an engine.io connection may stay without joining the "
        "namespace (with a valid token, if one is set) before it is closed."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks of reverse proxies whose X-Forwarded-For names the "
        "client address (comma separated; unset: the peer address is the client).",
    )
    address_cpu_share: float = Field(
        0.25, gt=0, description="Seconds per second of message decoding and spec validation one "
        "client address may use (more: `rate_limited` until it recovers)."
    )
    address_cpu_burst: float = Field(
        0.5, gt=0, description="Burst allowance of that share (seconds)."
    )
    log_lines_per_minute: float = Field(
        30.0, gt=0, description="Log lines about one client address's bad input per minute (the "
        "rest are counted in `pipelines_log_lines_suppressed_total`)."
    )
    log_burst: int = Field(10, ge=1, description="Burst allowance of that rate.")
    submissions_per_second: float = Field(
        2.0, gt=0, description="Sustained `process_msg`/`validate` rate per session."
    )
    submission_burst: int = Field(5, ge=1, description="Burst allowance of that rate.")
    http_validations_per_second: float = Field(
        5.0, gt=0, description="Sustained `POST /api/validate` rate per client address."
    )
    http_validation_burst: int = Field(20, ge=1, description="Burst allowance of that rate.")
    http_runs_per_second: float = Field(
        1.0, gt=0, description="Sustained `POST /api/runs` rate per client address (more: HTTP "
        "429, `rate_limited`)."
    )
    http_run_burst: int = Field(5, ge=1, description="Burst allowance of that rate.")
    max_http_runs: int = Field(
        100, ge=1, description="Most `POST /api/runs` pipelines running at once (server-wide; "
        "more: HTTP 503, `busy`)."
    )
    events_per_second: float = Field(
        50.0, gt=0, description="Sustained rate of any client event per session."
    )
    event_burst: int = Field(100, ge=1, description="Burst allowance of that rate.")
    max_inflight_events: int = Field(
        4, ge=1, description="Most handlers running at once for one session."
    )

    # -- running pipelines ---------------------------------------------------------------
    pipeline_budget: float = Field(
        3600.0, gt=0, description="Wall-clock seconds a pipeline may run before it is stopped."
    )
    max_result_bytes: int = Field(
        1_000_000, ge=16, description="Largest single result value, as JSON (bytes)."
    )
    max_session_bytes: int = Field(
        128_000_000, ge=1024, description="Byte budget of one session's running pipeline: half "
        "for results sent and not yet acknowledged (the sender waits), and the values waiting in "
        "its queues and result buffer count against the whole (over: `limit_exceeded`)."
    )
    default_window: int = Field(
        256, ge=1, description="Credit window: results sent and not yet acknowledged (default)."
    )
    max_window: int = Field(8192, ge=1, description="Largest window a client may ask for.")
    batch_max_items: int = Field(
        128, ge=1, description="Most results in one `results` event (batch mode)."
    )
    stall_timeout: float = Field(
        30.0, gt=0, description="Seconds without an acknowledgement before a client is stalled."
    )
    metrics_min_interval: float = Field(
        0.1, gt=0, description="Shortest `metrics_interval` a client may ask for (seconds)."
    )
    loop_block_threshold: float = Field(
        1.0, ge=0, description="Seconds the event loop may be blocked before the watchdog names "
        "the node and tells its session (0: no watchdog)."
    )
    max_error_events_per_second: int = Field(
        10, ge=1, description="Most non-terminal `node_error` events per pipeline per second."
    )

    # -- registry ------------------------------------------------------------------------
    demo_sleep_scale: float = Field(
        1.0, ge=0, le=100, description="Factor on the demo coroutines' sleeps (3/2/1 s at 1.0)."
    )
    test_coroutines: bool = Field(
        False, description="Register the faulty test-only coroutines (Test.*). Never in production."
    )
    fetch_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts (`host` or `host:port`) `Net.fetch` may GET from (comma separated); "
        "empty: `Net.fetch` is not offered.",
    )
    fetch_timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds one `Net.fetch` request may take in all."
    )
    fetch_max_bytes: int = Field(
        1_000_000, ge=1, description="Largest response body `Net.fetch` reads (bytes)."
    )
    regex_timeout: float = Field(
        1.0, gt=0, le=60, description="Seconds one `Regex.*` match may take (then that item fails)."
    )
    regex_max_input: int = Field(
        100_000, ge=1, description="Longest string (characters) a `Regex.*` node matches."
    )
    builtin_coroutines: bool = Field(
        True, description="Offer the built-in coroutines (off: only your own, from --coroutines "
        "and entry points)."
    )
    coroutines: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Your registries to serve, as module:attribute (e.g. mypkg.nodes:registry; "
        "comma separated, the flag is repeatable).",
    )
    entry_point_coroutines: bool = Field(
        True, description="Also serve the coroutines installed packages declare in the "
        "entry-point group `pipelines.coroutines`."
    )

    # -- distributed mode (nodes on worker pools over NATS JetStream) ----------------------
    nats_url: str | None = Field(
        None, description="NATS server(s) for nodes placed on worker pools (comma separated); "
        "unset: a spec that names a pool is refused."
    )
    pools: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Pool names a spec may place nodes on (comma separated; empty: any).",
    )
    broker_timeout: float = Field(
        10.0, gt=0, description="Seconds the broker may be unreachable before a run with pool "
        "nodes fails with `broker_unavailable`."
    )
    ack_wait: float = Field(
        5.0, gt=0, description="Seconds a worker may hold a message unacknowledged before it "
        "goes to another worker (workers renew it for long items)."
    )
    max_deliver: int = Field(
        3, ge=1, description="Deliveries of one message (each ending with a dead worker) before "
        "its items become `worker_crashed` errors."
    )
    edge_cap: int = Field(
        1024, ge=1, description="Most messages waiting on one edge subject in the broker (a "
        "node's `queue_size` lowers it for its edge)."
    )
    dedup_window: float = Field(
        120.0, gt=0, description="Seconds the broker remembers message ids (idempotent re-send)."
    )
    live_ttl: float = Field(
        15.0, gt=0, description="Seconds a run's liveness key lives unrenewed; then the workers "
        "purge what it left in the broker."
    )
    max_stream_bytes: int = Field(
        -1, ge=-1, description="Byte cap of each pool's stream (-1: none); reaching it fails the "
        "run with `stream_full`."
    )
    remote_batch_items: int = Field(
        64, ge=1, le=4096, description="Most items in one broker message."
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        known = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        if value.upper() not in known:
            raise ValueError(f"unknown log level {value!r}; use one of {', '.join(known)}")
        return value.upper()

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator(
        "allowed_origins", "allowed_hosts", "coroutines", "fetch_hosts", "trusted_proxies", "pools",
        mode="before",
    )
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        # "a,b" (environment) or ["a", "b,c"] (a repeated flag): one flat list.
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [part.strip() for v in value for part in v.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value

    @field_validator("token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("the token is empty, which would let anyone in; set a secret or "
                             "leave it unset")
        return value

    def spec_limits(self) -> SpecLimits:
        """The engine limits these settings impose on every submitted spec."""
        return SpecLimits(
            max_nodes=self.max_nodes,
            max_edges=self.max_edges,
            max_args_bytes=self.max_args_bytes,
            max_concurrency=self.max_concurrency,
            max_queue_size=self.max_queue_size,
            max_source_items=self.max_source_items,
            max_item_bytes=self.max_item_bytes,
            max_pipeline_items=self.max_pipeline_items,
            max_inflight_items=self.max_inflight_items,
        )
