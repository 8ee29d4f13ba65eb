"""The wire vocabulary shared by the handlers and the sessions (see docs/protocol.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.report import RunReport, RunStatus

__all__ = ["RunOptions", "Stops", "code_label", "error", "fail", "run_outcome"]

#: Why a run was stopped early -> (its `done` status, error code or None, message).
Stops = Mapping[str, tuple[str, str | None, str]]

_CODE = re.compile(r"[a-z][a-z_]{0,39}")


class RunOptions(BaseModel):
    """The optional second argument of `process_msg`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    results: Literal["recv", "batch"] = "recv"
    window: int | None = Field(None, ge=1, description="Credit window (capped by the setting).")
    metrics: bool = True
    metrics_interval: float = Field(0.25, gt=0, le=60, allow_inf_nan=False)


def error(
    code: str,
    message: str,
    *,
    path: str | None = None,
    node: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An error object: `{"code", "message", "path", "node", "errors"}`."""
    return {"code": code, "message": message, "path": path, "node": node, "errors": errors or []}


def fail(err: dict[str, Any]) -> dict[str, Any]:
    """The negative ack answer around an error object."""
    return {"ok": False, "error": err}


def code_label(code: object) -> str:
    """An error code fit for a Prometheus label value: a short snake_case word of ours, or
    "other" (user-controlled text never becomes a label value)."""
    return code if isinstance(code, str) and _CODE.fullmatch(code) else "other"


def run_outcome(report: RunReport, stop_reason: str | None,
                stops: Stops) -> tuple[str, dict[str, Any] | None]:
    """The status and error object of a run's `done`: why it was stopped, if it was stopped
    early (a reason missing from `stops` ends it `cancelled`), else what its report says."""
    if stop_reason is not None:
        status, code, message = stops.get(stop_reason, ("cancelled", None, stop_reason))
        return status, (error(code, message) if code is not None else None)
    if report.error is not None:
        return report.status.value, report.error.to_dict()
    if report.status is RunStatus.FAILED:
        return report.status.value, error("node_failed", "the pipeline failed")
    return report.status.value, None
