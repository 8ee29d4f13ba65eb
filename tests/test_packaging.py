"""Code inside server/ and client/ imports its own package relatively.

Installed, those folders are the packages `pipelines_server` and `pipelines_client` (see
setup.py), so an absolute `import server...` or `import_module("client...")` inside them works in
a checkout and breaks in every installation. tests/test_install.py runs the built wheel.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _absolute_self_imports(folder: str) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in ("import_module", "find_spec") and isinstance(node.args[0].value, str):
                    names = [node.args[0].value]
            for name in names:
                if name.split(".")[0] in ("server", "client"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def test_server_and_client_import_themselves_relatively() -> None:
    found = _absolute_self_imports("server") + _absolute_self_imports("client")
    hint = "use relative imports (installed, these are pipelines_server and pipelines_client):"
    assert found == [], "\n".join([hint, *found])
