"""A server with API keys: the page asks for one, keeps it in this tab only, and uses it."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

KEY = "k-7f3a9c-page-test"


async def test_the_key_prompt(make_server, browser):
    server = await make_server(api_keys=f"other,{KEY}")

    def scenario(page, watch, url):
        page.goto(url)
        panel = page.locator("#key-panel")
        expect(panel).to_be_visible()
        expect(page.get_by_label("API key", exact=True)).to_be_focused()
        page.get_by_label("API key", exact=True).fill("wrong-key")
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#key-error")).to_have_text("The server refused that key.")
        page.get_by_label("API key", exact=True).fill(KEY)
        page.get_by_role("button", name="Use key").click()
        expect(panel).to_be_hidden()
        expect(page.locator("#health")).to_have_text("● ok")
        page.get_by_label("Prompt").fill("squares")
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("#final-state")
        state = page.inner_text("#final-state")
        with page.expect_download() as info:
            page.get_by_role("link", name="Download zip").click()
        zip_magic = Path(info.value.path()).read_bytes()[:4]
        storage = page.evaluate("() => ({local: JSON.stringify(localStorage), session: JSON.stringify(sessionStorage),"
                                " url: location.href, html: document.documentElement.outerHTML})")
        sockets = [ws.url for ws in watch.sockets]
        job_url = page.url
        page.get_by_role("button", name="Forget key").click()
        expect(panel).to_be_visible()
        forgotten = page.evaluate("() => JSON.stringify(sessionStorage)")
        # A link to a job, opened without the key: the key, then the job.
        page.goto(url + "#/jobs")
        page.goto(job_url)
        expect(panel).to_be_visible()
        page.get_by_label("API key", exact=True).fill(KEY)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#final-state")).to_have_text("COMPLETE")
        return state, zip_magic, storage, sockets, forgotten

    # The refused key is a 401 the browser logs; that is the point of the test, not an error.
    state, zip_magic, storage, sockets, forgotten = await browser.run(scenario, server.url, check=False)
    assert state == "COMPLETE"
    assert zip_magic == b"PK\x03\x04"
    assert KEY in storage["session"]
    assert KEY not in storage["local"] and KEY not in storage["url"] and KEY not in storage["html"]
    # The WebSocket carries it as ?token=: a browser cannot set headers there (the contract's way).
    assert sockets and all(f"token={KEY}" in u for u in sockets)
    assert KEY not in forgotten
