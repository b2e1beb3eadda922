"""Model and program output is text on the page, never markup: the classic payloads show
as themselves and run nothing, even with the CSP switched off (the rendering alone is safe)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

FILE = "<img/src=x/onerror=alert(1)>"  # a path the server's checks accept: three names
PROMPT = "<img src=x onerror=alert(3)> and <script>alert(4)</script>"
XSS_TEXT = (
    "Two files.\n\n"
    f"```python\n# file: {FILE}\nprint('never run')\n```\n\n"
    "```python\nimport sys\nprint('<script>alert(1)</script>')\n"
    "print('<img src=x onerror=alert(2)>', file=sys.stderr)\n```\n"
)


@pytest.mark.parametrize("bypass_csp", [True, False], ids=["csp-off", "csp-on"])
async def test_payloads_show_as_text(make_server, browser, bypass_csp):
    server = await make_server(text=XSS_TEXT)

    def scenario(page, watch, url):
        page.goto(url)
        page.get_by_label("Prompt").fill(PROMPT)
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("#final-state")
        assert page.inner_text("#job-prompt") == PROMPT
        assert page.locator("#output pre.stdout").text_content() == "<script>alert(1)</script>\n"
        assert page.locator("#output pre.stderr").text_content() == "<img src=x onerror=alert(2)>\n"
        tab = page.get_by_role("tab", name=FILE)
        expect(tab).to_have_count(1)
        tab.click()
        expect(page.locator("#code")).to_have_text("print('never run')\n")
        page.get_by_role("tab", name="Model answer").click()
        assert page.locator("#code").text_content() == XSS_TEXT
        markup = page.evaluate("""() => ({
            imgs: [...document.querySelectorAll('img')].map((i) => i.getAttribute('src')),
            scripts: [...document.querySelectorAll('script')].map((s) => s.getAttribute('src')),
            handlers: [...document.querySelectorAll('*')].flatMap((el) =>
                [...el.attributes].filter((a) => a.name.startsWith('on')).map((a) => el.tagName + ' ' + a.name)),
        })""")
        page.goto(url + "#/jobs")
        link = page.locator("#jobs-body a.job-link").first
        expect(link).to_have_text(PROMPT)
        markup["list_imgs"] = page.locator("#jobs-body img").count()
        return markup

    markup = await browser.run(scenario, server.url, bypass_csp=bypass_csp)
    assert markup["imgs"] == ["/assets/favicon.svg"]  # the logo; nothing from the data
    assert markup["scripts"] == ["/assets/js/theme-init.js", "/assets/js/main.js"]
    assert markup["handlers"] == [] and markup["list_imgs"] == 0
    # browser.run also checked: no dialog opened, no CSP violation, no uncaught error.


async def test_trusted_types_refuse_html_strings(make_server, browser):
    """The CSP makes the browser itself refuse innerHTML with a string on this page."""
    server = await make_server()

    def scenario(page, watch, url):
        page.goto(url)
        expect(page.locator("#health")).to_have_text("● ok")
        return page.evaluate("""() => {
            try { document.querySelector('#form-error').innerHTML = '<b>x</b>'; return 'written'; }
            catch (e) { return e.name; }
        }""")

    assert await browser.run(scenario, server.url, check=False) == "TypeError"
