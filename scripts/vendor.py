"""Copy the page's browser libraries from node_modules into server/vendor, with a manifest.

    python scripts/vendor.py [--out DIR]      (scripts/vendor runs `npm ci` first, then this)

package-lock.json stays the source of truth: every copied file comes from an npm package whose
installed version matches the lockfile, and server/vendor/manifest.json records, for each
package, the lockfile's version, resolved URL and integrity, plus the sha256 of each copied
file. Each package's licence files, and those of every package it depends on in the lockfile
(a browser build may bundle them), are copied too. The output depends only on its inputs, so
re-running gives identical bytes (tests/test_vendor.py checks this).

Which files: `vendor_sources()` of server/static_files.py (the list the server serves).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["VendorError", "build_manifest", "main", "write_vendor"]

ROOT = Path(__file__).resolve().parent.parent
# LICENSE, LICENCE.md, license-mit.txt, COPYING, NOTICE (not license-update.mjs).
LICENCE_FILE = re.compile(r"^(licen[cs]e|copying|notice)(-[a-z0-9]+)?(\.(md|txt|markdown))?$", re.IGNORECASE)


class VendorError(RuntimeError):
    """Raised when node_modules does not match package-lock.json or a file is missing."""


def package_of(relative: str) -> str:
    """The npm package a node_modules-relative path belongs to (`@scope/name` or `name`)."""
    parts = relative.split("/")
    return "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]


def _lock_entry(lock: dict[str, Any], package: str) -> dict[str, Any]:
    entry = lock.get("packages", {}).get(f"node_modules/{package}")
    if entry is None:
        raise VendorError(f"{package} is not in package-lock.json: add it to package.json, run npm install")
    return dict(entry)


def _with_dependencies(lock: dict[str, Any], package: str) -> list[str]:
    """The package and every package it depends on in the lockfile, sorted."""
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        entry = _lock_entry(lock, name)
        todo += sorted(entry.get("dependencies", {}))
    return sorted(seen)


def _licence_files(node_modules: Path, package: str) -> list[str]:
    folder = node_modules / package
    found = sorted(
        p.name for p in folder.iterdir() if p.is_file() and LICENCE_FILE.match(p.name)
    )
    if not found:
        raise VendorError(f"{folder} has no licence file (LICENSE, LICENCE, COPYING or NOTICE)")
    return [f"{package}/{name}" for name in found]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_manifest(sources: list[str], lock: dict[str, Any], node_modules: Path) -> dict[str, Any]:
    """The manifest for `sources` (paths relative to node_modules), checked against the lockfile.

    :raises VendorError: node_modules is missing, out of date, or lacks a file.
    """
    if not node_modules.is_dir():
        raise VendorError(f"{node_modules} is missing: run `npm ci` in {ROOT} (scripts/vendor does)")
    packages: dict[str, Any] = {}
    files: list[str] = []
    for main_package in sorted({package_of(rel) for rel in sources}):
        for package in _with_dependencies(lock, main_package):
            if package in packages:
                continue
            entry = _lock_entry(lock, package)
            installed = json.loads((node_modules / package / "package.json").read_text(encoding="utf-8"))
            if installed.get("version") != entry.get("version"):
                raise VendorError(
                    f"node_modules/{package} is {installed.get('version')}, package-lock.json says "
                    f"{entry.get('version')}: run `npm ci`"
                )
            licences = _licence_files(node_modules, package)
            packages[package] = {
                "version": entry["version"],
                "resolved": entry.get("resolved"),
                "integrity": entry.get("integrity"),
                "license": installed.get("license"),
                "license_files": licences,
            }
            files += licences
    files += sources
    missing = [rel for rel in files if not (node_modules / rel).is_file()]
    if missing:
        raise VendorError(f"missing in node_modules: {', '.join(missing)}: run `npm ci`")
    return {
        "comment": "Written by scripts/vendor from node_modules, checked against package-lock.json.",
        "packages": packages,
        "files": {rel: _sha256(node_modules / rel) for rel in sorted(set(files))},
    }


def write_vendor(out: Path, sources: list[str], lock_file: Path, node_modules: Path) -> dict[str, Any]:
    """Replace `out` with the vendored files and their manifest.json; return the manifest."""
    lock = json.loads(lock_file.read_text(encoding="utf-8"))
    manifest = build_manifest(sources, lock, node_modules)
    if out.exists():
        shutil.rmtree(out)
    for rel in manifest["files"]:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((node_modules / rel).read_bytes())
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command line: write server/vendor (or --out), one line of outcome, exit 1 on a problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "server" / "vendor")
    parser.add_argument("--node-modules", type=Path, default=ROOT / "node_modules")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from server.static_files import vendor_sources

    try:
        manifest = write_vendor(args.out, vendor_sources(), ROOT / "package-lock.json", args.node_modules)
    except VendorError as exc:
        print(f"scripts/vendor: {exc}", file=sys.stderr)
        return 1
    counts = f"{len(manifest['files'])} files from {len(manifest['packages'])} npm packages"
    print(f"vendored {counts} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
