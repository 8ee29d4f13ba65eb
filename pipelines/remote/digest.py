"""A registry's fingerprint, which workers announce so a driver can refuse a mismatch."""

from __future__ import annotations

import hashlib
import json

from ..registry import Registry

__all__ = ["registry_digest"]


def registry_digest(registry: Registry) -> str:
    """A short hash of every coroutine's name, kind, module and argument schema."""
    parts = []
    for name in sorted(registry.names()):
        info = registry.get(name)
        assert info is not None
        parts.append([name, info.kind, getattr(info.fn, "__module__", ""),
                      getattr(info.fn, "__qualname__", ""), info.args_schema()])
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
