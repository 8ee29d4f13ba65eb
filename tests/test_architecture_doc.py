"""docs/architecture.md names only files and folders that exist (it is a map: keep it true)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_path_named_in_architecture_md_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:pipelines|server|client|static|scripts|tests|docs|\.ci)/[\w./-]*"
                           r"|[\w-]+\.(?:py|toml|md))`", text))
    assert len(named) > 30, sorted(named)
    places = (ROOT, ROOT / "docs", ROOT / "pipelines", ROOT / "server", ROOT / "client")
    missing = [p for p in sorted(named) if not any((place / p).exists() for place in places)]
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"
    # Every module of the engine and of the service appears in it.
    for package in ("pipelines", "server"):
        for module in sorted((ROOT / package).glob("*.py")):
            if module.name in ("__init__.py", "keys.py"):
                continue
            assert f"{module.stem}.py" in text, f"{package}/{module.name} is not placed in the map"
