"""Every module of the engine imports on its own, in a fresh interpreter (no hidden import
order, no import circle that only works one way round), and no module of the project imports
another module's `_private` name."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "server", "client")


def modules(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append(".".join(parts))
    return out


def private_imports(path: Path, package: str) -> list[str]:
    """`from <a module of ours> import _name` in the file at `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ImportFrom):
            continue
        ours = node.level > 0 or (node.module or "").split(".")[0] in PACKAGES
        for alias in node.names:
            if ours and alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                             f"from {'.' * node.level}{node.module or ''} import {alias.name}")
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found += private_imports(path, package)
    assert found == []


def test_the_private_name_check_finds_one(tmp_path: Path) -> None:
    bad = ROOT / "pipelines" / "_probe_private_import.py"
    bad.write_text("from .items import _SECRET\n")
    try:
        assert private_imports(bad, "pipelines") == [
            "pipelines/_probe_private_import.py:1: from .items import _SECRET"]
    finally:
        bad.unlink()


@pytest.mark.parametrize("package", ["pipelines"])
def test_every_engine_module_imports_alone_in_a_fresh_interpreter(package: str) -> None:
    names = modules(package)
    assert f"{package}.processor" in names and f"{package}.remote.worker" in names
    procs = {name: subprocess.Popen([sys.executable, "-c", f"import {name}"], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in names}
    failed = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failed[name] = err.strip().splitlines()[-1:]
    assert failed == {}


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports at module level, type-only imports (in
    `if TYPE_CHECKING:`) included; imports inside functions (lazy ones) are not counted."""
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps: set[str] = set()
        stack: list[ast.stmt] = list(ast.parse(path.read_text()).body)
        while stack:
            stmt = stack.pop()
            if isinstance(stmt, ast.If):
                stack += stmt.body
            elif isinstance(stmt, ast.ImportFrom):
                root = base[:len(base) - stmt.level + 1] if stmt.level else []
                target = ".".join(root + ([stmt.module] if stmt.module else []))
                for alias in stmt.names:
                    deps.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in files
                             else target)
            elif isinstance(stmt, ast.Import):
                deps |= {alias.name for alias in stmt.names}
        # a package's __init__ only gathers names; importing it is not a dependency between
        # concepts
        graph[mod] = {d for d in deps if d in files and d != mod
                      and files[d].name != "__init__.py"}
    return graph


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The import circles: each group of modules that reach one another, sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[tuple[str, ...]] = set()

    def visit(mod: str) -> None:
        index[mod] = low[mod] = len(index)
        stack.append(mod)
        for dep in graph[mod]:
            if dep not in index:
                visit(dep)
                low[mod] = min(low[mod], low[dep])
            elif dep in stack:
                low[mod] = min(low[mod], index[dep])
        if low[mod] == index[mod]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == mod:
                    break
            if len(group) > 1:
                found.add(tuple(sorted(group)))

    for mod in graph:
        if mod not in index:
            visit(mod)
    return found




def test_no_import_circle_among_the_engine_modules() -> None:
    graph = import_graph("pipelines")
    assert {"pipelines.items", "pipelines.window", "pipelines.processor",
            "pipelines.plumber"} <= set(graph)
    assert "pipelines.processor" not in graph["pipelines.items"]
    assert "pipelines.window" not in graph["pipelines.items"]
    assert "pipelines.processor" not in graph["pipelines.window"]
    assert cycles(graph) == set()


def test_the_circle_check_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {("a", "b", "c")}
