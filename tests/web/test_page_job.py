"""The main job in a real browser: prompt in, stages, streamed code, output, download."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from playwright.sync_api import expect

from atomic.agent.providers.replay import DEFAULT_TEXT

SQUARES = "\n".join(str(n * n) for n in range(1, 11)) + "\n"
PROGRAM = DEFAULT_TEXT.split("```python\n", 1)[1].split("```", 1)[0]
SLOW = "Here it is.\n\n```python\nimport time\nprint('start', flush=True)\ntime.sleep(30)\n```\n" + "padding " * 200


def submit(page, url, prompt="Write a Python program that prints the first 10 square numbers"):
    page.goto(url)
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url("**/#/job/*")
    return page.url.rsplit("/", 1)[1]


def final_state(page, timeout=30_000):
    page.wait_for_selector("#final-state", timeout=timeout)
    return page.inner_text("#final-state")


async def test_submit_a_prompt_and_get_the_program(make_server, browser):
    server = await make_server(rate=60)  # ~30 words: half a second of streaming

    def scenario(page, watch, url):
        seen_tokens = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: seen_tokens.append(
            json.loads(f)["type"] if isinstance(f, str) else None)))
        job_id = submit(page, url)
        assert final_state(page) == "COMPLETE"
        stages = page.locator("#timeline .stage.done .stage-name").all_inner_texts()
        assert stages == ["QUEUED", "PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"]
        assert all(t.strip() for t in page.locator("#timeline .stage.done .stage-time").all_inner_texts())
        assert "token" in seen_tokens and "done" in seen_tokens
        # The tokens went into the code view: the model's answer, whole.
        page.get_by_role("tab", name="Model answer").click()
        assert page.inner_text("#code") == DEFAULT_TEXT
        # The program's file, read from the job's zip, highlighted.
        page.get_by_role("tab", name="main.py").click()
        assert page.inner_text("#code") == PROGRAM
        assert page.locator("#code .tok-keyword").count() >= 3
        assert page.inner_text("#output pre.stdout") == SQUARES
        with page.expect_download() as info:
            page.get_by_role("link", name="Download zip").click()
        data = Path(info.value.path()).read_bytes()
        return job_id, info.value.suggested_filename, data

    job_id, filename, data = await browser.run(scenario, server.url)
    assert filename == f"atomic-{job_id}.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = {n.split("/", 1)[1]: n for n in zf.namelist() if not n.endswith("/")}
        assert zf.read(names["main.py"]).decode() == PROGRAM
    doc = (await server.client.get(f"/api/jobs/{job_id}")).json()
    assert doc["state"] == "COMPLETE"


async def test_cancel_a_running_job(make_server, browser):
    server = await make_server(text=SLOW, rate=4)

    def scenario(page, watch, url):
        job_id = submit(page, url, "something slow")
        expect(page.locator("#job-state")).to_have_text("GENERATING")
        expect(page.locator("#code")).to_contain_text("Here it is.")
        page.get_by_role("button", name="Cancel").click()
        assert final_state(page) == "CANCELLED"
        assert not page.get_by_role("button", name="Cancel").is_visible()
        return job_id

    job_id = await browser.run(scenario, server.url)
    doc = (await server.client.get(f"/api/jobs/{job_id}")).json()
    assert doc["state"] == "CANCELLED"


async def test_a_dropped_websocket_is_followed_again(make_server, browser):
    server = await make_server(rate=40)

    def scenario(page, watch, url):
        connections = []

        def route(ws):
            n = len(connections)
            sent = []
            connections.append(sent)
            upstream = ws.connect_to_server()
            ws.on_message(lambda m: (sent.append(json.loads(m)), upstream.send(m)))
            received = []

            def forward(message):
                received.append(json.loads(message))
                ws.send(message)
                if n == 0 and sum(e["type"] == "token" for e in received) == 5:
                    ws.close(code=4000, reason="dropped by the test")  # the page sees a drop

            upstream.on_message(forward)

        page.route_web_socket("**/ws/stream*", route)
        submit(page, url)
        assert final_state(page) == "COMPLETE"
        return connections

    connections = await browser.run(scenario, server.url)
    assert len(connections) >= 2
    first, again = connections[0][0], connections[1][0]
    assert "prompt" in first
    assert set(again) == {"job_id", "after_seq"} and again["after_seq"] >= 6  # accepted, state..., 5 tokens
