"""Keyboard only, a phone's screen, and dark mode."""

from __future__ import annotations

from playwright.sync_api import expect

PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def tab_to(page, element_id, limit=40):
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} cannot be reached with Tab")


async def test_keyboard_only_submission(make_server, browser):
    server = await make_server()

    def scenario(page, watch, url):
        page.goto(url)
        expect(page.locator("#health")).to_have_text("● ok")
        tab_to(page, "prompt")
        page.keyboard.type("Write a Python program that prints the first 10 square numbers")
        tab_to(page, "submit")
        page.keyboard.press("Enter")
        page.wait_for_selector("#final-state")
        state = page.inner_text("#final-state")
        # The file tabs follow the arrow keys.
        tab_to(page, "tab-1")
        page.keyboard.press("ArrowLeft")
        focused = page.evaluate("() => document.activeElement.textContent")
        selected = page.get_by_role("tab", selected=True).inner_text()
        # Ctrl+Enter in the prompt submits too.
        page.goto(url)
        page.get_by_label("Prompt").fill("again")
        page.get_by_label("Prompt").press("Control+Enter")
        page.wait_for_url("**/#/job/*")
        page.wait_for_selector("#final-state")
        return state, focused, selected, page.inner_text("#final-state")

    state, focused, selected, again = await browser.run(scenario, server.url)
    assert state == "COMPLETE" and again == "COMPLETE"
    assert focused == selected == "Model answer"


async def test_every_view_fits_a_phone(make_server, browser):
    server = await make_server()
    long_prompt = "Write a program that prints " + "a_very_long_unbroken_identifier_" * 8

    def scenario(page, watch, url):
        widths = {}

        def measure(name):
            widths[name] = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")

        page.goto(url)
        expect(page.locator("#health")).to_have_text("● ok")
        add = page.get_by_role("button", name="Add test case")
        if add.is_enabled():  # a server that takes test cases: the table is part of the form
            add.click()
        page.locator("details.more summary").click()
        measure("form")
        page.get_by_label("Prompt").fill(long_prompt)
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("#final-state")
        measure("job")
        page.goto(url + "#/jobs")
        expect(page.locator("#jobs-body tr")).to_have_count(1)
        measure("jobs")
        page.goto(url + "#/status")
        expect(page.locator("#chart-stages rect.chart-bar").first).to_be_attached()
        measure("status")
        return widths

    widths = await browser.run(scenario, server.url, **PHONE)
    for view, (scroll, inner) in widths.items():
        assert scroll <= inner, f"{view}: the page scrolls sideways ({scroll} > {inner} px)"


async def test_dark_mode_and_the_theme_toggle(make_server, browser):
    server = await make_server()
    background = "() => getComputedStyle(document.body).backgroundColor"

    def luminance(css):
        r, g, b = (int(x) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255

    def scenario(page, watch, url):
        page.goto(url)
        expect(page.locator("#health")).to_have_text("● ok")
        dark = page.evaluate(background)
        page.get_by_role("button", name="Colour theme").click()  # auto -> light
        expect(page.get_by_role("button", name="Colour theme")).to_have_text("Theme: light")
        light = page.evaluate(background)
        page.reload()
        expect(page.locator("#health")).to_have_text("● ok")
        kept = page.evaluate(background)
        page.get_by_role("button", name="Colour theme").click()  # light -> dark
        forced = page.evaluate(background)
        return dark, light, kept, forced

    dark, light, kept, forced = await browser.run(scenario, server.url, color_scheme="dark")
    assert luminance(dark) < 0.15 and luminance(forced) < 0.15
    assert luminance(light) > 0.85 and luminance(kept) > 0.85
