"""Request metrics: the JSON snapshot and the Prometheus series agree, and stay bounded."""

from __future__ import annotations

from atomic.metrics import Metrics


def test_request_counts_and_latency_in_both_views() -> None:
    m = Metrics()
    for _ in range(3):
        m.request("/health", "GET", 200, 0.001)
    m.request("/health", "HEAD", 200, 0.002)
    m.request("/api/jobs/<job_id>", "GET", 404, 0.004)
    snap = m.snapshot()["requests"]
    assert snap["total"] == 5
    assert snap["by_route"] == {"GET /health 200": 3, "HEAD /health 200": 1, "GET /api/jobs/<job_id> 404": 1}
    assert snap["latency_ms"]["/health"]["count"] == 4
    text = m.prometheus().decode()
    assert 'atomic_http_requests_total{method="GET",route="/health",status="200"} 3.0' in text
    assert 'atomic_http_requests_total{method="GET",route="/api/jobs/<job_id>",status="404"} 1.0' in text
    assert 'atomic_http_request_duration_seconds_count{route="/health"} 4.0' in text


def test_a_made_up_method_does_not_mint_new_series() -> None:
    m = Metrics()
    for method in ("BREW", "WHEN", "FOO"):
        m.request("unmatched", method, 405, 0.001)
    assert m.snapshot()["requests"]["by_route"] == {"OTHER unmatched 405": 3}
    assert 'method="OTHER",route="unmatched",status="405"} 3.0' in m.prometheus().decode()
