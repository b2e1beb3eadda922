"""The contract's additions (test cases, samples, verdicts, candidates, per-case output):
the page sends them as the contract names them and shows them when a server sends them.

A server that does not take them yet is offered none of them (the form reads
/openapi.json); where a test needs a server that has them and this one does not, it
rewrites that server's real answers in the browser's transport (Playwright routes),
adding only the contract's fields."""

from __future__ import annotations

import json

from playwright.sync_api import expect

ECHO = "```python\nimport sys\nprint(sys.stdin.read().strip().upper())\n```\n"


def with_fields(route, *names):
    """/openapi.json as the server wrote it, its generate body also taking ``names``."""
    doc = route.fetch().json()
    schema = doc["paths"]["/api/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for name in names:
        schema.setdefault("properties", {}).setdefault(name, {})
    route.fulfill(json=doc)


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
    doc = (await server.client.get("/openapi.json")).json()
    ref = doc["paths"]["/api/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    takes_tests = "tests" in doc["components"]["schemas"][ref.rsplit("/", 1)[1]].get("properties", {})

    def scenario(page, watch, url):
        page.route("**/openapi.json", lambda route: with_fields(route, "tests", "samples"))
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
        if takes_tests:
            page.wait_for_selector("#final-state")
            outcome = page.locator("#output details.case").count()
        else:
            expect(page.locator("#form-error")).to_contain_text("unknown field")
            outcome = page.inner_text("#form-error")
        return sent, outcome

    sent, outcome = await browser.run(scenario, server.url)
    assert sent[0] == {
        "prompt": "upper-case the input", "language": "python", "samples": 3,
        "tests": [{"stdin": "abc", "expected_stdout": "ABC"}, {"stdin": "x y"}],
    }
    if takes_tests:
        assert outcome == 2  # one result per case
    else:
        # Today's server refuses the first field it does not know, and the form says which.
        assert outcome.split(":")[0] in ("tests", "samples") and "unknown field" in outcome


async def test_a_judged_job_shows_cases_verdicts_and_candidates(make_server, browser):
    server = await make_server(text=ECHO)
    r = await server.client.post("/api/generate", json={"prompt": "upper-case the input", "wait": True})
    job = r.json()
    assert job["state"] == "COMPLETE"
    # The document a server with tested generation sends for the same job.
    job["request"]["tests"] = [{"stdin": "abc", "expected_stdout": "ABC"}, {"stdin": "x", "expected_stdout": "Y"}]
    job["request"]["samples"] = 2
    case = {"exit_code": 0, "stderr": "", "duration_ms": 12.5, "termination": "exited", "truncated": False}
    job |= {
        "state": "FAILED", "verdict": "wrong_answer", "passed": 1, "total": 2, "chosen": 1,
        "tests": [{"name": "first", "verdict": "accepted", "stdout": "ABC\n", **case},
                  {"name": "second", "verdict": "wrong_answer", "stdout": "X\n", **case}],
        "candidates": [{"index": 0, "verdict": "runtime_error", "passed": 0, "total": 2, "attempts": 2},
                       {"index": 1, "verdict": "wrong_answer", "passed": 1, "total": 2, "attempts": 1}],
        "error": {"code": "tests_failed", "message": "no candidate passed every test", "stage": "EXECUTING"},
    }

    def scenario(page, watch, url):
        page.route(f"**/api/jobs/{job['id']}", lambda route: route.fulfill(json=job))
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
        kept = page.locator("table.candidates tr.chosen td").first.inner_text()
        passed = page.locator("#result .passed").inner_text()
        error = page.locator("#result .error").inner_text()
        # The program's files still come from the job's real zip.
        expect(page.get_by_role("tab", name="main.py")).to_have_attribute("aria-selected", "true")
        return summaries, open_, shown, kept, passed, error

    summaries, open_, shown, kept, passed, error = await browser.run(scenario, server.url)
    assert summaries[0].startswith("accepted first") and summaries[1].startswith("wrong_answer second")
    assert open_ == [False, True]  # the failing case is open
    assert shown == {"expected": "Y", "input": "x", "got": "X\n"}
    assert kept == "1 (kept)"
    assert passed == "1/2 tests passed"
    assert error.startswith("tests_failed")


async def test_live_output_is_grouped_by_test_case(make_server, browser):
    server = await make_server(text="```python\nprint('one')\nprint('two')\n```\n", rate=20)

    def scenario(page, watch, url):
        held = []  # the done event, kept back until the live view has been read

        def route(ws):
            upstream = ws.connect_to_server()

            def forward(message):
                event = json.loads(message)
                if event["type"] == "output":
                    event["case"] = "first"  # as a server running test cases names them
                if event["type"] == "done":
                    held.append((ws, json.dumps(event)))
                    return
                ws.send(json.dumps(event))

            upstream.on_message(forward)
            ws.on_message(upstream.send)

        page.route_web_socket("**/ws/stream*", route)
        page.goto(url)
        page.get_by_label("Prompt").fill("two lines")
        page.get_by_role("button", name="Generate").click()
        expect(page.locator("#output .case.live .case-title")).to_have_text("Case first")
        live = page.locator("#output .case.live pre.stdout").inner_text()
        while not held:
            page.wait_for_timeout(50)
        ws, done = held[0]
        ws.send(done)
        page.wait_for_selector("#final-state")
        return live

    assert await browser.run(scenario, server.url) == "one\ntwo\n"
