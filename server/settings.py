"""Every knob of the service in one place: read from PIPELINES_* environment variables.

The command line (`python server.py --help`) offers one flag per field; a flag beats the
environment, which beats the default. Field descriptions double as the `--help` text and the
README settings table.
"""

from __future__ import annotations

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
    max_concurrency: int = Field(256, ge=1, description="Largest `concurrency` a node may ask for.")
    max_queue_size: int = Field(1024, ge=1, description="Largest `queue_size` a node may ask for.")

    # -- sessions and rates --------------------------------------------------------------
    max_sessions: int = Field(1000, ge=1, description="Most connected sessions (server-wide).")
    max_connections: int = Field(
        1100, ge=1, description="Most engine.io connections, including ones that never join "
        "the namespace (server-wide; refused with HTTP 401)."
    )
    submissions_per_second: float = Field(
        2.0, gt=0, description="Sustained `process_msg`/`validate` rate per session."
    )
    submission_burst: int = Field(5, ge=1, description="Burst allowance of that rate.")
    http_validations_per_second: float = Field(
        5.0, gt=0, description="Sustained `POST /api/validate` rate per client address."
    )
    http_validation_burst: int = Field(20, ge=1, description="Burst allowance of that rate.")
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

    @field_validator("allowed_origins", "pools", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
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
        )
