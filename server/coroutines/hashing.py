"""Digests: `Hash.digest`."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pipelines.processor import Processor
from pipelines.registry import Registry

__all__ = ["ALGORITHMS", "register"]

ALGORITHMS = ("sha256", "sha512", "sha1", "md5", "blake2b", "sha3_256")


def register(reg: Registry) -> None:
    @reg.processor(
        "Hash.digest",
        doc="The hex digest of a string (UTF-8), or of any other value's canonical JSON.",
    )
    async def digest(
        self: Processor,
        q_elt: tuple[Any, ...],
        algorithm: Literal["sha256", "sha512", "sha1", "md5", "blake2b", "sha3_256"] = "sha256",
    ) -> str:
        value = q_elt[0]
        text = value if isinstance(value, str) else json.dumps(
            value, sort_keys=True, separators=(",", ":"), allow_nan=False)
        # md5 and sha1 are for checksums and keys, not for security.
        return hashlib.new(algorithm, text.encode(), usedforsecurity=False).hexdigest()
