"""The page as HTTP serves it: security headers, caching, no inline script, no HTML sinks."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from atomic.server.web import STATIC_DIR, is_public


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.handlers: list[str] = []
        self.styles: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
            self._in_script = True
        if tag == "style":
            self.styles.append("<style>")
        for name, _ in attrs:
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")
            if name == "style":
                self.styles.append(f"{tag} style=")
            if name in ("href", "src") and (a[name] or "").lower().startswith("javascript:"):
                self.handlers.append(f"{tag} {name}=javascript:")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data.strip())


async def test_page_headers_and_no_inline_script(make_server):
    server = await make_server()
    r = await server.client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = {d.split()[0]: d.split()[1:] for d in r.headers["content-security-policy"].split("; ")}
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["require-trusted-types-for"] == ["'script'"] and csp["trusted-types"] == ["'none'"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-request-id"]

    page = _Page()
    page.feed(r.text)
    assert page.scripts and all(s.get("src", "").startswith("/assets/") for s in page.scripts), page.scripts
    assert page.inline == [] and page.handlers == [] and page.styles == []
    # Every file the page names is served, with its type and the same headers.
    for src in [s["src"] for s in page.scripts] + re.findall(r'href="(/assets/[^"]+)"', r.text):
        asset = await server.client.get(src)
        assert asset.status_code == 200, src
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in asset.headers["content-security-policy"]
    js = await server.client.get("/assets/js/main.js")
    assert js.headers["content-type"].startswith("text/javascript")


async def test_etag_revalidation_and_unknown_files(make_server):
    server = await make_server()
    r = await server.client.get("/assets/atomic.css")
    etag = r.headers["etag"]
    assert r.headers["cache-control"] == "no-cache"
    again = await server.client.get("/assets/atomic.css", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    changed = await server.client.get("/assets/atomic.css", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200 and changed.content == r.content
    for path in ("/assets/nope.js", "/assets/../web.py", "/assets/%2e%2e/web.py", "/assets/js/../../web.py"):
        missing = await server.client.get(path)
        assert missing.status_code == 404, path
        assert missing.json()["error"]["code"] == "not_found"
    assert (await server.client.post("/")).status_code == 405


async def test_page_loads_without_a_key_and_the_api_still_needs_one(make_server):
    server = await make_server(api_keys="sekrit")
    assert (await server.client.get("/")).status_code == 200
    assert (await server.client.get("/assets/js/main.js")).status_code == 200
    assert (await server.client.get("/api/status")).status_code == 401
    assert (await server.client.get("/api/jobs")).status_code == 401
    assert not is_public("/api/status") and not is_public("/assets") and is_public("/assets/x.js")


def test_scripts_never_write_html():
    """No HTML sink in the page's code: elements are built from text (dom.js)."""
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                       r"setAttribute\(\s*['\"]on|createContextualFragment|srcdoc")
    found = []
    for path in sorted(Path(STATIC_DIR).rglob("*.js")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if sinks.search(line) and not line.lstrip().startswith("//"):
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert found == []
