"""The contract's cross-cutting rules: errors, headers, CORS, auth, validation."""

from __future__ import annotations

import pytest


def assert_error(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert r.headers.get("X-Request-ID")


async def test_health_and_request_id(make_server_without_docker):
    server = await make_server_without_docker()
    r = await server.client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert len(r.headers["X-Request-ID"]) >= 16
    r = await server.client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"


async def test_status_reports_every_part(make_server):
    server = await make_server()
    doc = (await server.client.get("/api/status")).json()
    assert doc["status"] == "ok", doc.get("reasons")
    assert "python" in doc["languages"]
    assert doc["queue"]["capacity"] == 1000 and doc["queue"]["depth"] == 0
    assert doc["workers"] == {"busy": 0, "total": 10}
    assert doc["agent"]["healthy"] is True and doc["agent"]["pool_size"] == 4
    assert doc["sandbox"]["available"] is True and doc["sandbox"]["image"] == "atomic-sandbox:latest"


async def test_unknown_route_and_wrong_method(make_server_without_docker):
    server = await make_server_without_docker()
    assert_error(await server.client.get("/nope"), 404, "not_found")
    assert_error(await server.client.get("/api/generate"), 405, "method_not_allowed")
    assert_error(await server.client.get("/api/jobs/0123"), 404, "job_not_found")


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"content": b"prompt=x", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"json": {"prompt": ""}}, 422, "validation_error"),
        ({"json": {"prompt": "x", "limits": {"memory_mb": "lots"}}}, 422, "validation_error"),
        ({"content": b'{"prompt": "' + b"x" * (2 << 20) + b'"}', "headers": {"content-type": "application/json"}},
         413, "payload_too_large"),
    ],
)
async def test_generate_rejects_bad_input_clearly(make_server_without_docker, kwargs, status, code):
    server = await make_server_without_docker()
    r = await server.client.post("/api/generate", **kwargs)
    assert_error(r, status, code)
    listed = (await server.client.get("/api/jobs")).json()
    assert listed["jobs"] == []  # nothing was accepted


async def test_validation_message_names_the_field(make_server_without_docker):
    server = await make_server_without_docker()
    r = await server.client.post("/api/generate", json={"prompt": "x", "priority": "urgent"})
    assert_error(r, 422, "validation_error")
    assert r.json()["error"]["message"].startswith("priority:")


async def test_cors_preflight_and_origin(make_server_without_docker):
    server = await make_server_without_docker(cors_origins="https://app.example")
    r = await server.client.options(
        "/api/generate",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    )
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    other = await server.client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_api_keys_guard_everything_but_health(make_server_without_docker):
    server = await make_server_without_docker(api_keys="k1,k2")
    assert (await server.client.get("/health")).status_code == 200
    assert_error(await server.client.get("/api/status"), 401, "unauthorized")
    assert_error(await server.client.get("/api/status", headers={"Authorization": "Bearer nope"}), 401,
                 "unauthorized")
    ok = await server.client.get("/api/status", headers={"Authorization": "Bearer k2"})
    assert ok.status_code == 200


async def test_list_jobs_newest_first_with_cursor(make_server_without_docker):
    server = await make_server_without_docker()
    ids = []
    for i in range(5):
        r = await server.client.post("/api/generate", json={"prompt": f"p{i}", "execute": False})
        ids.append(r.json()["id"])
    seen = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await server.client.get("/api/jobs", params=params)).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert_error(await server.client.get("/api/jobs", params={"state": "NOPE"}), 422, "validation_error")


async def test_openapi_documents_every_route(make_server_without_docker):
    server = await make_server_without_docker()
    doc = (await server.client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    app = server.rt.app
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):  # the page is not API
            continue
        path = rule.rule.replace("<job_id>", "{job_id}")
        methods = {"GET"} if rule.websocket else set(rule.methods) - {"HEAD", "OPTIONS"}
        routes |= {(path, m) for m in methods}
    assert routes == documented


async def test_metrics_json_and_prometheus(make_server):
    server = await make_server()
    await server.client.post("/api/generate", json={"prompt": "x", "wait": True})
    m = (await server.client.get("/api/metrics")).json()
    assert m["jobs"]["by_state"]["COMPLETE"] == 1 and m["jobs"]["success_rate"] == 1.0
    assert m["requests"]["latency_ms"]["/api/generate"]["count"] >= 1
    assert m["stages_ms"]["GENERATING"]["count"] == 1
    assert m["tokens"]["replay/replay-1"]["completion_tokens"] > 0
    assert m["sandbox_runs"] == {"exited": 1}
    assert m["agent"]["pool"]["size"] == 4 and m["agent"]["pool"]["requests"] >= 1
    assert m["store"]["writes"] >= 1
    text = (await server.client.get("/metrics")).text
    assert 'atomic_jobs_total{state="COMPLETE"} 1.0' in text
    assert "atomic_http_request_duration_seconds_bucket" in text
    assert 'atomic_queue_depth' in text
    assert "atomic_agent_pool_connected" in text and "atomic_agent_pool_requests_total" in text


async def test_websocket_needs_the_key_too(make_server_without_docker):
    import json

    import trio
    from trio_websocket import ConnectionRejected, open_websocket_url

    server = await make_server_without_docker(api_keys="k1")
    try:
        async with open_websocket_url(server.ws_url):
            raise AssertionError("accepted without a key")
    except ConnectionRejected as exc:
        assert exc.status_code == 401
        assert json.loads(exc.body)["error"]["code"] == "unauthorized"
    doc = (await server.client.post("/api/generate", json={"prompt": "x", "execute": False, "wait": True},
                                    headers={"Authorization": "Bearer k1"})).json()
    async with open_websocket_url(server.ws_url + f"?job_id={doc['id']}&token=k1") as ws:
        with trio.fail_after(5):
            assert json.loads(await ws.get_message())["type"] == "done"
    async with open_websocket_url(server.ws_url, extra_headers=[(b"authorization", b"Bearer k1")]) as ws:
        await ws.send_message(json.dumps({"job_id": doc["id"]}))
        with trio.fail_after(5):
            assert json.loads(await ws.get_message())["type"] == "done"


async def test_health_fast_path_keeps_the_contract(make_server_without_docker):
    server = await make_server_without_docker(cors_origins="https://app.example")
    r = await server.client.get("/health", headers={"Origin": "https://app.example", "X-Request-ID": "r-1"})
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["X-Request-ID"] == "r-1"
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    head = await server.client.head("/health")
    assert head.status_code == 200 and head.content == b""
    assert_error(await server.client.post("/health"), 405, "method_not_allowed")
    pre = await server.client.options("/health", headers={"Origin": "https://app.example",
                                                          "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 200 and pre.headers["Access-Control-Allow-Origin"] == "https://app.example"
    m = (await server.client.get("/api/metrics")).json()
    assert m["requests"]["by_route"]["GET /health 200"] >= 1
