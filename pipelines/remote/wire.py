"""What travels: subject and stream names, and the JSON batch messages of `[seq, value]` items.

An input message is a JSON list of `[seq, value]`. A result message is a JSON list with one
entry per input item: `[seq, value]` (a value passes on), `[seq]` (a tombstone: dropped,
filtered) or `[seq, null, [error_type, message, item]]` (the item failed).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "RESULTS_STREAM",
    "PIPES_BUCKET",
    "LIVE_BUCKET",
    "WORKERS_BUCKET",
    "ATTEMPTS_BUCKET",
    "WORKER_CONSUMER",
    "HDR_MSG_ID",
    "HDR_WORKER",
    "pool_stream",
    "pool_subject",
    "results_subject",
    "results_consumer",
    "parse_pool_subject",
    "split_subject",
    "encode",
    "encode_batches",
    "error_entry",
    "too_large",
]

RESULTS_STREAM = "PLR"
PIPES_BUCKET = "pl_pipes"
LIVE_BUCKET = "pl_live"
WORKERS_BUCKET = "pl_workers"
ATTEMPTS_BUCKET = "pl_attempts"
WORKER_CONSUMER = "workers"
HDR_MSG_ID = "Nats-Msg-Id"
HDR_WORKER = "Pl-Worker"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def pool_stream(pool: str) -> str:
    return f"PL_{pool}"


def pool_subject(pool: str, pid: str, node: int) -> str:
    return f"pl.{pool}.{pid}.{node}"


def results_subject(pid: str, node: int) -> str:
    return f"plr.{pid}.{node}"


def results_consumer(pid: str) -> str:
    return f"plr_{pid}"


def split_subject(subject: str) -> str:
    """Where the items of a redelivered message go one by one: a subject of their own, so the
    split never waits for room on the edge the original still holds a place in."""
    return subject if subject.endswith(".s") else f"{subject}.s"


def parse_pool_subject(subject: str) -> tuple[str, str, int]:
    """(pool, pipeline id, node index) of an input message's subject (or its split subject)."""
    parts = subject.split(".")
    return parts[1], parts[2], int(parts[3])


def encode(entries: list[Any]) -> bytes:
    return _dumps(entries).encode()


def error_entry(seq: int, error_type: str, message: str, item: str) -> list[Any]:
    return [seq, None, [error_type, message[:500], item if len(item) <= 200 else item[:197] + "..."]]


def _unsendable(seq: int, value: Any, exc: Exception, what: str) -> list[Any]:
    return error_entry(seq, "unserializable_value",
                       f"{what} cannot be sent as JSON: {type(exc).__name__}: {exc}", repr((value,)))


def encode_batches(entries: list[list[Any]], max_bytes: int,
                   what: str = "the value") -> tuple[list[tuple[list[int], bytes]], list[list[Any]]]:
    """Encode `entries` (`[seq, value, ...]`) into messages of at most `max_bytes` (a single
    larger entry goes alone). Returns (seqs, payload) per message, and error entries for the
    values JSON cannot carry."""
    try:
        data = encode(entries)
    except (TypeError, ValueError, RecursionError):
        good: list[list[Any]] = []
        bad: list[list[Any]] = []
        for e in entries:
            try:
                encode(e)
            except (TypeError, ValueError, RecursionError) as exc:
                bad.append(_unsendable(e[0], e[1] if len(e) > 1 else None, exc, what))
            else:
                good.append(e)
        out = encode_batches(good, max_bytes, what)[0] if good else []
        return out, bad
    if len(data) <= max_bytes or len(entries) == 1:
        return [([e[0] for e in entries], data)], []
    half = len(entries) // 2
    a, _ = encode_batches(entries[:half], max_bytes, what)
    b, _ = encode_batches(entries[half:], max_bytes, what)
    return a + b, []


def too_large(batches: list[tuple[list[int], bytes]], entries: list[list[Any]], limit: int,
              what: str) -> tuple[list[tuple[list[int], bytes]], list[list[Any]]]:
    """Take single-entry messages over `limit` bytes out of `batches`: each becomes an error
    entry `value_too_large` (an item error, never a message the broker refuses)."""
    if all(len(data) <= limit for _, data in batches):
        return batches, []
    by_seq = {e[0]: e for e in entries}
    keep, bad = [], []
    for seqs, data in batches:
        if len(data) <= limit:
            keep.append((seqs, data))
            continue
        for seq in seqs:
            value = by_seq[seq][1] if len(by_seq[seq]) > 1 else None
            bad.append(error_entry(seq, "value_too_large",
                                   f"{what} is {len(data)} bytes as JSON; the broker takes at "
                                   f"most {limit}", repr((value,))))
    return keep, bad
