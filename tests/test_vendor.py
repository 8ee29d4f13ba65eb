"""The browser libraries shipped in server/vendor match package-lock.json and node_modules.

server/vendor is written by scripts/vendor (scripts/vendor.py) from node_modules; these tests
hold it to the lockfile: each package's version, resolved URL and integrity are the lockfile's,
every shipped file has the recorded sha256 and nothing else is shipped, and regenerating from
node_modules (installed by `npm ci`, which scripts/test runs) gives identical bytes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from server.static_files import VENDOR_DIR, vendor_sources

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"


def _vendor_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_script", ROOT / "scripts" / "vendor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((VENDOR_DIR / "manifest.json").read_text(encoding="utf-8"))
    return manifest


def _shipped(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_manifest_matches_the_lockfile() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    manifest = _manifest()
    vendor = _vendor_script()
    assert manifest["packages"], "the manifest names no package"
    for package, entry in manifest["packages"].items():
        locked = lock[f"node_modules/{package}"]
        assert entry["version"] == locked["version"], package
        assert entry["integrity"] == locked["integrity"], package
        assert entry["resolved"] == locked.get("resolved"), package
        assert entry["license_files"], f"{package} ships no licence file"
    # Every served file's package (and each direct dependency of the page) is in the manifest.
    for rel in vendor_sources():
        assert vendor.package_of(rel) in manifest["packages"], rel
    direct = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["dependencies"]
    for package, version in direct.items():
        assert manifest["packages"][package]["version"] == version, package


def test_shipped_files_are_exactly_the_manifest() -> None:
    manifest = _manifest()
    assert _shipped(VENDOR_DIR) == set(manifest["files"]) | {"manifest.json"}
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((VENDOR_DIR / rel).read_bytes()).hexdigest() == digest, rel
    assert set(vendor_sources()) <= set(manifest["files"])


def test_shipped_files_are_not_ignored_by_git() -> None:
    """A clone must get them: no .gitignore pattern (such as `dist/`) may hide one."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs on a git clone: git and .git are needed here")
        pytest.skip("not a git checkout")
    files = sorted(_manifest()["files"])
    done = subprocess.run(["git", "check-ignore", "--no-index", *(f"server/vendor/{f}" for f in files)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.stdout == "", f"ignored by git: {done.stdout}"


def test_regenerating_from_node_modules_gives_identical_bytes(tmp_path: Path) -> None:
    if not (NODE_MODULES / ".package-lock.json").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("node_modules is missing under CI: scripts/test runs `npm ci`")
        pytest.skip("node_modules is missing: run `npm ci` (scripts/test does)")
    vendor = _vendor_script()
    out = tmp_path / "vendor"
    vendor.write_vendor(out, vendor_sources(), ROOT / "package-lock.json", NODE_MODULES)
    assert _shipped(out) == _shipped(VENDOR_DIR)
    for rel in sorted(_shipped(out)):
        assert (out / rel).read_bytes() == (VENDOR_DIR / rel).read_bytes(), (
            f"server/vendor/{rel} differs from what scripts/vendor writes: run scripts/vendor"
        )


def test_node_modules_out_of_date_is_refused(tmp_path: Path) -> None:
    vendor = _vendor_script()
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    fake = tmp_path / "node_modules" / "cytoscape"
    fake.mkdir(parents=True)
    (fake / "package.json").write_text(json.dumps({"version": "0.0.1"}))
    with pytest.raises(vendor.VendorError, match="run `npm ci`"):
        vendor.build_manifest(["cytoscape/dist/cytoscape.esm.min.mjs"], lock, tmp_path / "node_modules")
