"""Browser tests: Debian's Chromium driven by Playwright, against a real server.

The server is the one tests/server uses (``make_server``: the real app, pipeline, Docker
sandbox and agent, with the replay provider). Playwright's sync API runs on one thread
of its own for the whole session, since its objects belong to the thread that made
them; a test hands it a *scenario* (a plain function of the page) and awaits it from
Trio, so the server keeps serving while the browser works. Chromium missing is a
failure, never a skip: ``tools/setup.sh`` installs it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import trio

CHROMIUM = os.environ.get("ATOMIC_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
TIMEOUT_MS = 20_000

# The live-server fixtures of tests/server, loaded by path (tests/ is not a package).
_spec = importlib.util.spec_from_file_location("_atomic_server_conftest", Path(__file__).parent.parent / "server" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_server = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _server  # dataclasses look their module up there
_spec.loader.exec_module(_server)
make_server = _server.make_server
short_dir = _server.short_dir
LiveServer = _server.LiveServer

# Every page records what must never happen: script from data (a dialog), a CSP
# violation (something tried to run or load what the policy forbids), an uncaught error.
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`);
});
"""


class Watch:
    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.sockets: list[Any] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("websocket", lambda ws: self.sockets.append(ws))
        page.add_init_script(WATCH)
        self.page = page

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def violations(self) -> list[str]:
        try:
            return list(self.page.evaluate("window.__violations || []"))
        except Exception:  # noqa: BLE001 - the page may be gone already
            return []


class Browser:
    """Headless Chromium on its own thread; ``await run(scenario, url, ...)`` from Trio."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="chromium")
        self._thread.submit(self._start).result()

    def _start(self) -> None:
        from playwright.sync_api import expect, sync_playwright

        expect.set_options(timeout=TIMEOUT_MS)  # not 5 s: a loaded machine runs Docker slower

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)

    async def run(self, scenario: Callable[..., Any], *args: Any, check: bool = True, **context: Any) -> Any:
        """Run ``scenario(page, watch, *args)`` in a fresh browser context.

        With ``check``, the page must end with no dialog, no CSP violation and no
        uncaught error. Context options (viewport, color_scheme, bypass_csp...) pass on.
        """
        future = self._thread.submit(self._run, scenario, args, check, context)
        return await trio.to_thread.run_sync(future.result)

    def _run(self, scenario: Callable[..., Any], args: tuple[Any, ...], check: bool, context: dict[str, Any]) -> Any:
        ctx = self.browser.new_context(accept_downloads=True, **context)
        try:
            page = ctx.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            watch = Watch(page)
            result = scenario(page, watch, *args)
            if check:
                assert watch.dialogs == [], f"a dialog opened: {watch.dialogs}"
                assert watch.violations() == [], f"CSP violations: {watch.violations()}"
                assert watch.errors == [], f"uncaught errors in the page: {watch.errors}"
            return result
        finally:
            ctx.close()

    def close(self) -> None:
        def stop() -> None:
            self.browser.close()
            self._pw.stop()

        self._thread.submit(stop).result()
        self._thread.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium is required for the browser tests and {CHROMIUM} is missing: run tools/setup.sh")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("Playwright for Python is required for the browser tests: run tools/setup.sh")
    b = Browser()
    yield b
    b.close()
