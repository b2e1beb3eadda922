"""The status panel: the service's health and live charts from /api/metrics."""

from __future__ import annotations

import threading

import trio
from playwright.sync_api import expect


async def test_status_panel_renders_live_charts(make_server, browser):
    server = await make_server()
    await server.client.post("/api/generate", json={"prompt": "first", "wait": True})
    sampled = threading.Event()  # the panel has its first samples: time to finish a job

    def scenario(page, watch, url):
        page.goto(url + "#/status")
        expect(page.locator("#service-status")).to_have_text("ok")
        cards = page.locator("#status-cards .card h2").all_inner_texts()
        langs = page.locator("#status-cards .langs li").all_inner_texts()
        expect(page.locator("#chart-jobs path.chart-line")).to_have_count(1)  # two samples: one rate
        expect(page.locator("#chart-stages rect.chart-bar")).to_have_count(5 * 2 + 2)  # p50 + p90, legend
        labels = page.locator("#chart-stages text.chart-label").all_text_contents()
        sampled.set()
        # A job finishing while the panel is open shows as throughput.
        expect(page.locator("#chart-jobs text.chart-value")).not_to_have_text("0.0/min", timeout=15_000)
        expect(page.locator("#chart-tokens text.chart-value")).not_to_have_text("0/s")
        return cards, langs, labels, page.locator("#chart-stages").get_attribute("aria-label")

    result = []

    async def look():
        result.append(await browser.run(scenario, server.url))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(look)
        await trio.to_thread.run_sync(sampled.wait, abandon_on_cancel=True)
        await server.client.post("/api/generate", json={"prompt": "second", "wait": True})
    cards, langs, labels, aria = result[0]
    assert cards[:6] == ["Service", "Queue", "Workers and jobs", "Agent", "Sandbox", "Languages"]
    # Each language with the version its image reports (GET /api/languages).
    assert any(lang.startswith("python 3.") for lang in langs), langs
    assert labels == ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"]
    assert aria.startswith("PARSING ")
