"""Fault points for tests, switched on by the PIPELINES_WORKER_FAULTS environment variable.

Comma separated `name=value`: `pause_after_fetch=SECONDS` (hold each fetched message that long
before working on it), `exit_after_publish=N` (exit after publishing the results of the Nth
message, before acking it), `exit_on_item=JSON` (exit when an item's value equals it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Faults", "FAULTS_ENV"]

FAULTS_ENV = "PIPELINES_WORKER_FAULTS"


@dataclass(frozen=True)
class Faults:
    pause_after_fetch: float = 0.0
    exit_after_publish: int = 0
    exit_on_item: Any = None
    has_exit_on_item: bool = False

    @classmethod
    def from_env(cls) -> Faults:
        raw = os.environ.get(FAULTS_ENV, "").strip()
        if not raw:
            return cls()
        kw: dict[str, Any] = {}
        for part in raw.split(","):
            name, _, value = part.partition("=")
            name = name.strip()
            if name == "pause_after_fetch":
                kw[name] = float(value)
            elif name == "exit_after_publish":
                kw[name] = int(value)
            elif name == "exit_on_item":
                kw[name] = json.loads(value)
                kw["has_exit_on_item"] = True
            else:
                raise ValueError(f"{FAULTS_ENV}: unknown fault point {name!r}")
        return cls(**kw)

    @property
    def any(self) -> bool:
        return bool(self.pause_after_fetch or self.exit_after_publish or self.has_exit_on_item)
