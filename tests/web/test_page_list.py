"""The job list: newest first, a state filter, pages, and each row opening its job."""

from __future__ import annotations

from playwright.sync_api import expect

NAP = "```python\nimport time\ntime.sleep(0.3)\nprint('rested')\n```\n"


async def test_filter_and_pages(make_server, browser):
    server = await make_server(text=NAP, max_concurrent=2)
    c = server.client
    ids = []
    for i in range(11):
        r = await c.post("/api/generate", json={"prompt": f"job {i + 1:02d}"})
        ids.append(r.json()["id"])
    for i in range(2):
        r = await c.post("/api/generate", json={"prompt": f"failing {i + 1}", "limits": {"timeout_s": 0.05}})
        ids.append(r.json()["id"])
    r = await c.post("/api/generate", json={"prompt": "to cancel"})
    ids.append(r.json()["id"])
    assert (await c.delete(f"/api/jobs/{ids[-1]}")).status_code == 200
    states = [(await server.wait_terminal(i))["state"] for i in ids]
    assert states == ["COMPLETE"] * 11 + ["FAILED"] * 2 + ["CANCELLED"]

    def scenario(page, watch, url):
        page.goto(url + "#/jobs")
        rows = page.locator("#jobs-body tr")
        expect(rows).to_have_count(14)
        assert rows.first.locator("a").inner_text() == "to cancel"  # newest first
        page.get_by_label("Per page").select_option("10")
        expect(rows).to_have_count(10)
        first_page = page.locator("#jobs-body a.job-link").all_inner_texts()
        page.get_by_role("button", name="Older →").click()
        expect(rows).to_have_count(4)
        second_page = page.locator("#jobs-body a.job-link").all_inner_texts()
        expect(page.get_by_role("button", name="Older →")).to_be_disabled()
        page.get_by_role("button", name="← Newer").click()
        expect(rows).to_have_count(10)
        assert page.locator("#jobs-body a.job-link").all_inner_texts() == first_page
        counts = {}
        for state in ("COMPLETE", "FAILED", "CANCELLED"):
            page.get_by_label("State").select_option(state)
            expect(page.locator(f"#jobs-body tr:not([data-state='{state}'])")).to_have_count(0)
            expect(rows.first).to_have_attribute("data-state", state)
            counts[state] = rows.count()
        page.get_by_label("State").select_option("COMPLETE")
        expect(rows).to_have_count(10)
        page.get_by_role("button", name="Older →").click()
        expect(rows).to_have_count(1)
        counts["COMPLETE"] += rows.count()
        page.get_by_label("State").select_option("FAILED")
        page.get_by_role("link", name="failing 1").click()
        page.wait_for_url("**/#/job/*")
        expect(page.locator("#final-state")).to_have_text("FAILED")
        expect(page.locator("#job-prompt")).to_have_text("failing 1")
        error = page.locator("#result .error").inner_text()
        return first_page, second_page, counts, page.url.rsplit("/", 1)[1], error

    first_page, second_page, counts, opened, error = await browser.run(scenario, server.url)
    prompts = ["to cancel", "failing 2", "failing 1"] + [f"job {i:02d}" for i in range(11, 0, -1)]
    assert first_page + second_page == prompts
    assert counts == {"COMPLETE": 11, "FAILED": 2, "CANCELLED": 1}
    assert opened == ids[11]
    assert "program_failed" in error and "timeout" in error
