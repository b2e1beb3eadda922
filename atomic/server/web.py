"""The web page: ``/`` and ``/assets/...``, served by the API's own process.

The files live in ``static/`` beside this module (package data) and are read once,
when the routes are registered: a request never touches the file system, so no path a
client sends can reach a file that was not shipped. Each answer carries an ETag (a
revalidation answers 304) and the page's security headers: a Content-Security-Policy that
allows scripts and styles from this origin only (no inline script, no style attribute) and
requires Trusted Types with no policy, so the browser itself refuses any HTML string put
into ``innerHTML`` and its kin: the page builds every element from text.

The page and its files hold no secret, so they load without an API key (:func:`is_public`);
every API call the page makes still needs the key when keys are configured.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from quart import Blueprint, Response, request
from quart_trio import QuartTrio

from .. import errors

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/assets/"  # not /static/: Quart keeps that for its own (unused) static folder

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",  # the API and the WebSocket on this same host and port
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    # Revalidate each time (a 304 when unchanged): a new version is seen at once.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(root: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every shipped file under ``root`` by its relative POSIX path."""
    assets = {}
    for path in sorted(root.rglob("*")):
        ctype = TYPES.get(path.suffix)
        if ctype is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[path.relative_to(root).as_posix()] = Asset(body, ctype, etag)
    return assets


def is_public(path: str) -> bool:
    """Whether ``path`` is the page or one of its files: served without an API key."""
    return path == "/" or path.startswith(PREFIX)


def _answer(asset: Asset) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    tags = _etags(request.headers.get("If-None-Match", ""))
    if asset.etag in tags or "*" in tags:
        return Response(b"", status=304, headers=headers)
    return Response(asset.body, content_type=asset.content_type, headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def register_web(app: QuartTrio) -> None:
    """Add the page's routes to ``app``."""
    assets = load_assets()
    if "index.html" not in assets:
        raise errors.ConfigError(f"the web page is missing from the package: {STATIC_DIR}/index.html")
    web = Blueprint("web", __name__)

    @web.get("/")
    async def page() -> Response:
        return _answer(assets["index.html"])

    @web.get(PREFIX + "<path:name>")
    async def static(name: str) -> Response:
        asset = assets.get(name)
        if asset is None:
            raise errors.NotFound(f"no file {PREFIX}{name}")
        return _answer(asset)

    app.register_blueprint(web)
