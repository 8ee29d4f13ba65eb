"""The browser page: GET / and an explicit list of static and vendored browser files.

Only the files named in this module are served. A whole folder is never exposed (so nothing
else in ``static/`` or the vendor folder is reachable), and a symlink is never followed: each
file must be a regular file inside its root, checked once when the app is built.

The page's own files are ``static/`` in a checkout and ``pipelines_server/static`` when
installed. Its browser libraries are shipped in ``vendor/`` next to this module (both ways):
copies of the npm packages pinned by package-lock.json, with their licence files and a
``manifest.json``, written by ``scripts/vendor`` from ``node_modules``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

__all__ = [
    "STATIC_DIR",
    "VENDOR_DIR",
    "StaticFile",
    "StaticFilesMissing",
    "page_files",
    "setup_static",
    "vendor_sources",
]

logger = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
# Installed: pipelines_server/static; in a checkout: static/ beside server/.
STATIC_DIR = (
    _PACKAGE_DIR / "static" if (_PACKAGE_DIR / "static").is_dir() else _PACKAGE_DIR.parent / "static"
)
VENDOR_DIR = _PACKAGE_DIR / "vendor"

_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_SVG = "image/svg+xml"

# (url path, file relative to static/, content type)
_STATIC: tuple[tuple[str, str, str], ...] = (
    ("/static/page.css", "page.css", _CSS),
    ("/static/favicon.svg", "favicon.svg", _SVG),
    ("/static/js/main.js", "js/main.js", _JS),
    ("/static/js/connection.js", "js/connection.js", _JS),
    ("/static/js/dom.js", "js/dom.js", _JS),
    ("/static/js/examples.js", "js/examples.js", _JS),
    ("/static/js/graph_view.js", "js/graph_view.js", _JS),
    ("/static/js/metrics_table.js", "js/metrics_table.js", _JS),
    ("/static/js/palette.js", "js/palette.js", _JS),
    ("/static/js/results_log.js", "js/results_log.js", _JS),
    ("/static/js/spec_editor.js", "js/spec_editor.js", _JS),
    ("/static/js/graph_model.js", "js/graph_model.js", _JS),
    ("/static/js/graph_style.js", "js/graph_style.js", _JS),
    ("/static/js/canvas_edit.js", "js/canvas_edit.js", _JS),
    ("/static/js/node_form.js", "js/node_form.js", _JS),
    ("/static/js/problems.js", "js/problems.js", _JS),
    ("/static/js/run_view.js", "js/run_view.js", _JS),
    ("/static/js/share.js", "js/share.js", _JS),
    ("/static/js/announce.js", "js/announce.js", _JS),
)

# (url path, file relative to node_modules/ and to vendor/, content type): self-contained browser
# builds (ES modules, no bare imports), mapped to names by the import map in static/index.html.
# After adding one here (and its package to package.json), run scripts/vendor.
_VENDOR: tuple[tuple[str, str, str], ...] = (
    (
        "/vendor/socket.io.esm.min.js",
        "socket.io-client/dist/socket.io.esm.min.js",
        _JS,
    ),
    ("/vendor/cytoscape.esm.min.mjs", "cytoscape/dist/cytoscape.esm.min.mjs", _JS),
    # cytoscape-dagre >= 4 bundles dagre into its ES module.
    ("/vendor/cytoscape-dagre.mjs", "cytoscape-dagre/dist/cytoscape-dagre.mjs", _JS),
    ("/vendor/js-yaml.mjs", "js-yaml/dist/js-yaml.mjs", _JS),
)

_IMPORT_MAP_RE = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


class StaticFilesMissing(RuntimeError):
    """Raised when a file the page needs is missing, or is not a regular file in its root."""


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One served file: where it is and how it is labelled."""

    url: str
    path: Path
    content_type: str


def _checked(root: Path, relative: str, url: str, content_type: str, hint: str) -> StaticFile:
    path = root / relative
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise StaticFilesMissing(f"{path} is missing. {hint}") from None
    # lstat does not follow a final symlink; the resolve check catches symlinked folders.
    if not stat.S_ISREG(st.st_mode) or not path.resolve().is_relative_to(root.resolve()):
        raise StaticFilesMissing(f"{path} is not a regular file inside {root}; refusing to serve it")
    return StaticFile(url=url, path=path, content_type=content_type)


def vendor_sources() -> list[str]:
    """The vendored files, as paths relative to node_modules/ (and to the vendor folder)."""
    return [rel for _url, rel, _ctype in _VENDOR]


_VENDOR_HINT = (
    "In a checkout, run scripts/vendor (it copies them from the npm packages pinned by "
    "package-lock.json); an installed package is incomplete: reinstall it."
)


def page_files(static_dir: Path = STATIC_DIR, vendor_dir: Path = VENDOR_DIR) -> list[StaticFile]:
    """Every file the page serves besides index.html, checked to exist as regular files.

    :raises StaticFilesMissing: a file is missing.
    """
    if not vendor_dir.is_dir():
        raise StaticFilesMissing(
            f"{vendor_dir} is missing: the page needs its browser libraries. {_VENDOR_HINT}"
        )
    files = [
        _checked(static_dir, rel, url, ctype, "The static/ folder is incomplete.")
        for url, rel, ctype in _STATIC
    ]
    files += [
        _checked(vendor_dir, rel, url, ctype, f"The page needs it. {_VENDOR_HINT}")
        for url, rel, ctype in _VENDOR
    ]
    return files


def _csp(index_html: str) -> str:
    """A Content-Security-Policy that allows this page's own files and its inline import map."""
    script_src = ["'self'"]
    for match in _IMPORT_MAP_RE.finditer(index_html):
        digest = hashlib.sha256(match.group(1).encode()).digest()
        script_src.append(f"'sha256-{base64.b64encode(digest).decode()}'")
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src {' '.join(script_src)}",
            # cytoscape sets inline styles on its canvas container.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "connect-src 'self' ws: wss:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _file_handler(item: StaticFile) -> _Handler:
    headers = {
        "Content-Type": item.content_type,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(item.path, headers=headers)

    return handler


def setup_static(
    app: web.Application,
    *,
    static_dir: Path = STATIC_DIR,
    vendor_dir: Path = VENDOR_DIR,
) -> None:
    """Register GET / (the page) and GET for each file on the explicit list.

    :param app: the application to add the routes to.
    :raises StaticFilesMissing: at start-up, when a listed file is missing.
    """
    index = _checked(static_dir, "index.html", "/", _HTML, "The static/ folder is incomplete.")
    files = page_files(static_dir, vendor_dir)
    index_headers = {
        "Content-Type": _HTML,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": _csp(index.path.read_text(encoding="utf-8")),
    }

    async def index_handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(index.path, headers=index_headers)

    app.router.add_get("/", index_handler, name="page")
    for item in files:
        app.router.add_get(item.url, _file_handler(item))
    logger.debug("serving the page and %d static files", len(files))
