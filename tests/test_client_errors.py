"""The client's typed errors for the server's newer codes: against a real server (and a real
nats-server) where the code can be provoked, from the error object where it cannot."""

from __future__ import annotations

from typing import Any

import pytest
from natsutil import NatsServer, nats_server
from serverutil import chain_spec, serve

from client import (
    BrokerUnavailableError,
    ClientError,
    ConnectError,
    ItemTooLargeError,
    LimitExceededError,
    PipelineFailedError,
    PipelinesClient,
    ProtocolError,
    ProtocolRefusedError,
    RateLimitedError,
    SpecValidationError,
    WorkerCrashedError,
)
from client.errors import error_from_payload, failure_from_payload

pytestmark = pytest.mark.timeout(120)


def err(code: str) -> dict[str, Any]:
    return {"code": code, "message": f"a {code}", "path": None, "node": "n1", "errors": []}


@pytest.mark.parametrize(
    ("code", "cls", "builtin"),
    [
        ("protocol_error", ProtocolRefusedError, RuntimeError),
        ("too_many_connections", RateLimitedError, RuntimeError),
        ("placement_unsupported", SpecValidationError, ValueError),
        ("broker_unavailable", BrokerUnavailableError, ConnectionError),
        ("worker_crashed", WorkerCrashedError, RuntimeError),
        ("item_too_large", ItemTooLargeError, ValueError),
        ("limit_exceeded", LimitExceededError, RuntimeError),
    ],
)
def test_codes_map_to_typed_errors(code: str, cls: type[Exception], builtin: type[Exception]) -> None:
    exc = error_from_payload(err(code))
    assert type(exc) is cls
    assert isinstance(exc, ClientError) and isinstance(exc, builtin)
    assert exc.code == code and exc.node == "n1"
    assert str(exc) == f"{code}: nodes.n1: a {code}"


def test_protocol_refusal_is_a_protocol_error() -> None:
    assert isinstance(error_from_payload(err("protocol_error")), ProtocolError)


def test_failed_runs_keep_their_report_and_generic_codes_stay_generic() -> None:
    exc = failure_from_payload(err("limit_exceeded"), report="the report")
    assert isinstance(exc, LimitExceededError) and exc.report == "the report"
    plain = failure_from_payload(err("node_failed"))
    assert type(plain) is PipelineFailedError


async def test_handshake_429_is_too_many_connections() -> None:
    """Past max_connections_per_address the handshake gets HTTP 429: ConnectError with
    code too_many_connections and status 429."""
    async with serve(max_connections_per_address=1) as url, PipelinesClient(url) as first:
        assert first.connected
        second = PipelinesClient(url)
        with pytest.raises(ConnectError) as caught:
            await second.connect()
        assert caught.value.code == "too_many_connections"
        assert caught.value.status == 429
        assert "429" in str(caught.value)
        await second.close()


@pytest.fixture
async def broker() -> Any:
    async with nats_server() as srv:
        yield srv


async def test_broker_gone_is_broker_unavailable_error(broker: NatsServer) -> None:
    """A run with a pool node whose broker dies for good ends in BrokerUnavailableError (a
    PipelineFailedError and a ConnectionError), raised by iterating the run."""
    spec = chain_spec({"coro": "Source.range", "args": {"stop": 1_000_000}},
                      {"coro": "Number.add", "args": {"n": 1}, "properties": {"pool": "cpu"}},
                      {"coro": "Flow.identity"})
    async with serve(nats_url=broker.url, broker_timeout=1.0, ack_wait=1.0) as url, \
            PipelinesClient(url) as pc:
        run = await pc.submit(spec)
        await broker.kill()
        with pytest.raises(BrokerUnavailableError) as caught:
            async for _ in run:
                pass
        assert isinstance(caught.value, PipelineFailedError)
        assert isinstance(caught.value, ConnectionError)
        assert caught.value.code == "broker_unavailable"
        assert caught.value.report is not None and caught.value.report.status == "failed"


async def test_protocol_error_ends_the_run_with_protocol_refused_error() -> None:
    """A frame the server cannot read (here: a socket.io packet type no client may send) gets
    `protocol_error` and the connection closed: the run in flight fails with
    ProtocolRefusedError, not a bare DisconnectedError."""
    slow = chain_spec({"coro": "Source.range", "args": {"stop": 10_000}},
                      {"coro": "Flow.delay", "args": {"seconds": 0.05}})
    async with serve() as url, PipelinesClient(url) as pc:
        run = await pc.submit(slow)
        await pc._sio.eio.send("9not socket.io")  # type: ignore[union-attr]
        with pytest.raises(ProtocolRefusedError) as caught:
            async for _ in run:
                pass
        assert caught.value.code == "protocol_error"
        assert not isinstance(caught.value, PipelineFailedError)
