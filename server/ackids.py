"""Unguessable socket.io ack ids, so that a client can only acknowledge what it has read.

python-socketio numbers the acks it asks of a client 1, 2, 3, ... per client. A client that
never reads its socket can then send the acks blind (`31[]`, `32[]`, ...) and open the credit
window without receiving anything, and the window stops limiting anything. Here every ack id
is drawn at random from 2**53 values (what a JavaScript number holds exactly), so an ack names
the one packet it answers: a blind or replayed ack matches nothing and is ignored. The wire
format does not change; clients echo the id they were given, as every socket.io client does.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import socketio  # type: ignore[import-untyped]

__all__ = ["ACK_ID_SPACE", "RandomAckIds", "RandomAckManager"]

#: Ack ids are drawn from 1 .. 2**53 - 1.
ACK_ID_SPACE = 2**53 - 1


class RandomAckIds:
    """Mix into any python-socketio manager (before it in the bases) for random ack ids,
    e.g. `class RedisAcks(RandomAckIds, socketio.AsyncRedisManager)`."""

    callbacks: dict[str, dict[int, Any]]

    def _generate_ack_id(self, sid: str, callback: Callable[..., Any]) -> int:
        pending = self.callbacks.setdefault(sid, {})
        while True:
            ack_id = secrets.randbelow(ACK_ID_SPACE) + 1
            if ack_id not in pending:
                pending[ack_id] = callback
                return ack_id


class RandomAckManager(RandomAckIds, socketio.AsyncManager):  # type: ignore[misc]
    """The default in-process manager with random, single-use ack ids."""
