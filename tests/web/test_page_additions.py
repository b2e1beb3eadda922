"""The contract's additions (test cases, samples, verdicts, candidates, per-case output):
the page sends them as the contract names them and shows what the server answers, end to
end against a real server (the replay provider as the model, Docker judging the programs).

A server that does not take them is offered none of them (the form reads /openapi.json).
Where a live view must be read before the job's ``done`` event replaces it, the test holds
that event back in the browser's transport (Playwright's WebSocket route) and then lets it
through unchanged."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

ECHO = "```python\nimport sys\nprint(sys.stdin.read().strip().upper())\n```\n"


async def test_the_form_offers_tests_and_samples_as_the_server_does(make_server, browser):
    server = await make_server(text=ECHO)
    doc = (await server.client.get("/openapi.json")).json()
    ref = doc["paths"]["/api/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    takes_tests = "tests" in doc["components"]["schemas"][ref.rsplit("/", 1)[1]].get("properties", {})

    def scenario(page, watch, url):
        page.goto(url)
        expect(page.locator("#health")).to_have_text("● ok")
        add = page.get_by_role("button", name="Add test case")
        expect(add).to_be_enabled() if takes_tests else expect(add).to_be_disabled()
        return True

    assert await browser.run(scenario, server.url)


async def test_tests_and_samples_go_out_as_the_contract_names_them(make_server, browser):
    server = await make_server(text=ECHO)

    def scenario(page, watch, url):
        sent = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda f: sent.append(json.loads(f))))
        page.goto(url)
        page.get_by_label("Prompt").fill("upper-case the input")
        page.get_by_label("Samples").fill("3")
        page.get_by_role("button", name="Add test case").click()
        page.get_by_label("Input of test case 1").fill("abc")
        page.get_by_label("Expected output of test case 1").fill("ABC")
        page.get_by_role("button", name="Add test case").click()
        page.get_by_label("Input of test case 2").fill("x y")
        page.get_by_role("button", name="Add test case").click()  # left empty: not sent
        page.get_by_role("button", name="Generate").click()
        expect(page.locator("#final-verdict")).to_have_text("accepted")
        return sent, page.locator("#output details.case").count(), page.locator("#result .passed").inner_text()

    sent, cases, passed = await browser.run(scenario, server.url)
    assert sent[0] == {
        "prompt": "upper-case the input", "language": "python", "samples": 3,
        "tests": [{"stdin": "abc", "expected_stdout": "ABC"}, {"stdin": "x y"}],
    }
    assert cases == 2  # one result per case
    assert passed == "2/2 tests passed"


async def test_a_judged_job_shows_cases_verdicts_and_candidates(make_server, browser):
    # Two samples judged to the end: candidate 0 crashes, candidate 1 passes one case of two.
    crash = "```python\nraise SystemExit(3)\n```\n"
    server = await make_server(text=[crash, ECHO])
    r = await server.client.post("/api/generate", json={
        "prompt": "upper-case the input", "samples": 2, "seed": 0, "judge_all": True, "wait": True,
        "tests": [{"name": "first", "stdin": "abc", "expected_stdout": "ABC"},
                  {"name": "second", "stdin": "x", "expected_stdout": "Y"}]}, timeout=120)
    job = r.json()
    assert (job["state"], job["verdict"], job["chosen"]) == ("FAILED", "wrong_answer", 1), job

    def scenario(page, watch, url):
        page.goto(f"{url}/#/job/{job['id']}")
        expect(page.locator("#final-verdict")).to_have_text("wrong_answer")
        cases = page.locator("#output details.case")
        expect(cases).to_have_count(2)
        summaries = cases.locator("summary").all_inner_texts()
        open_ = [c.get_attribute("open") is not None for c in cases.all()]
        failed = cases.nth(1)
        shown = {
            "expected": failed.locator("pre.expected").inner_text(),
            "input": failed.locator("pre.stdin").inner_text(),
            "got": failed.locator("pre.stdout").inner_text(),
        }
        verdicts = page.locator("table.candidates tr td:nth-child(2)").all_inner_texts()
        kept = page.locator("table.candidates tr.chosen td").first.inner_text()
        passed = page.locator("#result .passed").inner_text()
        error = page.locator("#result .error").inner_text()
        # The kept program's files come from the job's real zip.
        expect(page.get_by_role("tab", name="main.py")).to_have_attribute("aria-selected", "true")
        return summaries, open_, shown, verdicts, kept, passed, error

    summaries, open_, shown, verdicts, kept, passed, error = await browser.run(scenario, server.url)
    assert summaries[0].startswith("accepted first") and summaries[1].startswith("wrong_answer second")
    assert open_ == [False, True]  # the failing case is open
    assert shown == {"expected": "Y", "input": "x", "got": "X\n"}
    assert verdicts == ["runtime_error", "wrong_answer"]
    assert kept == "1 (kept)"
    assert passed == "1/2 tests passed"
    assert error.startswith("tests_failed")


async def test_live_output_is_grouped_by_test_case(make_server, browser):
    server = await make_server(text="```python\nprint('one')\nprint('two')\n```\n", rate=20)

    def scenario(page, watch, url):
        held = []  # the done event, kept back (unchanged) until the live view has been read

        def route(ws):
            upstream = ws.connect_to_server()

            def forward(message):
                if json.loads(message)["type"] == "done":
                    held.append((ws, message))
                    return
                ws.send(message)

            upstream.on_message(forward)
            upstream.on_close(lambda code, reason: None)  # the page's side stays open until done is let through
            ws.on_message(upstream.send)

        page.route_web_socket("**/ws/stream*", route)
        page.goto(url)
        page.get_by_label("Prompt").fill("two lines")
        page.get_by_role("button", name="Add test case").click()
        page.get_by_label("Expected output of test case 1").fill("one\ntwo")
        page.get_by_role("button", name="Generate").click()
        # The server names the case (its index: the form gives no name) on the live output.
        expect(page.locator("#output .case.live .case-title")).to_have_text("Case 0")
        live = page.locator("#output .case.live pre.stdout").inner_text()
        while not held:
            page.wait_for_timeout(50)
        ws, done = held[0]
        ws.send(done)
        ws.close(code=1000)
        expect(page.locator("#final-verdict")).to_have_text("accepted")  # the done event's document
        return live

    assert await browser.run(scenario, server.url) == "one\ntwo\n"


async def test_live_output_names_the_candidate(make_server, browser):
    server = await make_server(text="```python\nprint('one')\n```\n", rate=20)

    def scenario(page, watch, url):
        held = []  # the done event, kept back (unchanged) until the live view has been read

        def route(ws):
            upstream = ws.connect_to_server()

            def forward(message):
                if json.loads(message)["type"] == "done":
                    held.append(message)
                    return
                ws.send(message)

            upstream.on_message(forward)
            upstream.on_close(lambda code, reason: None)
            ws.on_message(upstream.send)
            held.append(ws)

        page.route_web_socket("**/ws/stream*", route)
        page.goto(url)
        page.get_by_label("Prompt").fill("one line")
        page.get_by_label("Samples").fill("2")
        page.get_by_role("button", name="Add test case").click()
        page.get_by_label("Expected output of test case 1").fill("one")
        page.get_by_role("button", name="Generate").click()
        # The first candidate to pass wins and the other is cancelled, maybe before it ran:
        # one live block at least, each naming its candidate.
        titles = page.locator("#output .case.live .case-title")
        expect(titles.first).to_have_text(re.compile(r"^Candidate [01], case 0$"))
        live = titles.all_inner_texts()
        while len(held) < 2:
            page.wait_for_timeout(50)
        ws, done = held
        ws.send(done)
        ws.close(code=1000)
        expect(page.locator("#final-verdict")).to_have_text("accepted")
        return live, page.locator("table.candidates tbody tr").count()

    live, candidates = await browser.run(scenario, server.url)
    assert live and all(re.fullmatch(r"Candidate [01], case 0", t) for t in live), live
    assert candidates == 2
