"""Plain data the client hands back: results, the final report, registry entries, announcements."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ProtocolError, failure_from_payload

__all__ = [
    "Announcement",
    "DoneReport",
    "PipelineInfo",
    "RegistryEntry",
    "ResultItem",
    "ResultsMode",
    "RunStatus",
]

ResultsMode = Literal["batch", "recv"]
RunStatus = Literal["completed", "cancelled", "failed"]


@dataclass(frozen=True, slots=True)
class ResultItem:
    """One output value. ``seq`` counts from 0 across all output nodes of the pipeline.

    In the legacy ``recv`` mode the server sends bare values: ``node`` is None and ``seq`` is
    the client's own count.
    """

    node: str | None
    seq: int
    value: Any

    def to_dict(self) -> dict[str, Any]:
        """Return the result as ``{"node", "seq", "value"}``."""
        return {"node": self.node, "seq": self.seq, "value": self.value}


@dataclass(frozen=True, slots=True)
class PipelineInfo:
    """What the server accepted: the pipeline id and its topology."""

    pipeline_id: str
    outputs: list[str] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_ack(cls, ack: Mapping[str, Any]) -> PipelineInfo:
        """Build from a ``process_msg`` ack or a ``pipeline_started`` payload."""
        pid = ack.get("pipeline_id")
        if not isinstance(pid, str):
            raise ProtocolError(f"accepted pipeline has no pipeline_id: {dict(ack)!r:.200}")
        return cls(
            pipeline_id=pid,
            outputs=[str(o) for o in ack.get("outputs") or []],
            nodes=[dict(n) for n in ack.get("nodes") or [] if isinstance(n, Mapping)],
            edges=[[str(a), str(b)] for a, b in ack.get("edges") or []],
        )


@dataclass(frozen=True, slots=True)
class DoneReport:
    """The ``done`` event: how the pipeline ended.

    The same fields, under the same names, as the library's ``RunReport.to_dict()`` (status,
    elapsed, results, nodes, error), plus the service's own: ``pipeline_id`` and ``skipped``
    (results the server could not send). ``nodes`` maps node name to ``{"in", "out", "errors",
    "retries", "dropped", "unpaired", "status"}`` (a source's ``in`` is what it produced, as in
    the library); ``error`` is the error object of a failed run.
    """

    pipeline_id: str | None
    status: RunStatus
    elapsed: float
    results: int
    nodes: dict[str, dict[str, Any]]
    error: dict[str, Any] | None
    skipped: int = 0
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the pipeline completed."""
        return self.status == "completed"

    def raise_for_status(self) -> DoneReport:
        """Raise :class:`PipelineFailedError` if the run failed; return self otherwise."""
        if self.status == "failed":
            raise failure_from_payload(
                self.error or {"code": "failed", "message": "pipeline failed"}, report=self
            )
        return self

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> DoneReport:
        """Build from a ``done`` event payload."""
        status = payload.get("status")
        if status not in ("completed", "cancelled", "failed"):
            raise ProtocolError(f"done event with unknown status {status!r:.80}")
        nodes = payload.get("nodes")
        error = payload.get("error")
        pid = payload.get("pipeline_id")
        return cls(
            pipeline_id=pid if isinstance(pid, str) else None,
            status=status,
            elapsed=float(payload.get("elapsed") or 0.0),
            results=int(payload.get("results") or 0),
            nodes=(
                {str(k): dict(v) for k, v in nodes.items() if isinstance(v, Mapping)}
                if isinstance(nodes, Mapping)
                else {}
            ),
            error=dict(error) if isinstance(error, Mapping) else None,
            skipped=int(payload.get("skipped") or 0),
            raw=dict(payload),
        )


@dataclass(frozen=True, slots=True)
class Announcement:
    """An operator's broadcast (the ``announce`` event): its text, the id of the server it was
    posted to, and when (Unix time; 0.0 when the server did not say)."""

    message: str
    server: str
    at: float

    @classmethod
    def from_payload(cls, payload: Any) -> Announcement | None:
        """Build from an ``announce`` payload; None when it carries no message."""
        if not isinstance(payload, Mapping) or not isinstance(payload.get("message"), str):
            return None
        at = payload.get("at")
        return cls(
            message=payload["message"],
            server=str(payload.get("server") or ""),
            at=float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else 0.0,
        )


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One coroutine the server may run: name, kind, doc line and JSON Schema of its args."""

    name: str
    kind: str
    doc: str
    args_schema: dict[str, Any]

    @classmethod
    def from_payload(cls, entry: Mapping[str, Any]) -> RegistryEntry:
        """Build from one entry of the ``registry`` answer."""
        schema = entry.get("args_schema")
        return cls(
            name=str(entry.get("name", "")),
            kind=str(entry.get("kind", "")),
            doc=str(entry.get("doc") or ""),
            args_schema=dict(schema) if isinstance(schema, Mapping) else {},
        )

    def arguments(self) -> list[tuple[str, str, Any, bool]]:
        """Return ``(name, type, default, required)`` for each argument in the schema."""
        props = self.args_schema.get("properties")
        if not isinstance(props, Mapping):
            return []
        required = set(self.args_schema.get("required") or [])
        out: list[tuple[str, str, Any, bool]] = []
        for name, spec in props.items():
            spec = spec if isinstance(spec, Mapping) else {}
            out.append((str(name), _schema_type(spec), spec.get("default"), name in required))
        return out


def _schema_type(spec: Mapping[str, Any]) -> str:
    """A short type name for one JSON Schema property."""
    if isinstance(spec.get("enum"), list):
        return "|".join(json.dumps(v) for v in spec["enum"])
    if "const" in spec:
        return json.dumps(spec["const"])
    if "type" in spec:
        t = spec["type"]
        if t == "array" and isinstance(spec.get("items"), Mapping):
            return f"list[{_schema_type(spec['items'])}]"
        return "|".join(t) if isinstance(t, list) else str(t)
    for key in ("anyOf", "oneOf"):
        if isinstance(spec.get(key), list):
            parts = [_schema_type(s) for s in spec[key] if isinstance(s, Mapping)]
            if "number" in parts:  # every integer is a number: "integer|number" says no more
                parts = [p for p in parts if p != "integer"]
            return "|".join(dict.fromkeys(parts))
    if "$ref" in spec:
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    return "any"
