"""HTTPS, WSS and HTTP/2 on the serving port (Hypercorn's TLS), certificates made by the
test (trustme); the start-up check of bad certificates; the CLI client over https."""

from __future__ import annotations

import argparse
import json

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from atomic import config
from atomic.cli import main
from atomic.client import status
from atomic.errors import ConfigError


def _h2(server, tls_files, http2: bool = True) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, verify=tls_files.client_context(), http2=http2, timeout=30)


async def test_https_offers_http2_by_alpn_and_http11_to_who_asks(make_server_without_docker, tls_files):
    server = await make_server_without_docker(tls_cert=tls_files.cert, tls_key=tls_files.key)
    assert server.url.startswith("https://127.0.0.1:")
    async with _h2(server, tls_files) as h2, _h2(server, tls_files, http2=False) as h1:
        r = await h2.get("/health", headers={"X-Request-ID": "rid-h2"})
        assert (r.status_code, r.http_version, r.json()) == (200, "HTTP/2", {"status": "ok"})
        assert r.headers["x-request-id"] == "rid-h2"  # the fast path's contract headers, over h2
        r = await h1.get("/health")
        assert (r.status_code, r.http_version) == (200, "HTTP/1.1")
        # Quart's routes over h2 too, and the fast /api/status.
        r = await h2.get("/api/status")
        assert r.status_code == 200 and r.http_version == "HTTP/2" and r.json()["status"] == "degraded"
        r = await h2.get("/api/jobs?limit=1")
        assert r.status_code == 200 and r.json() == {"jobs": [], "next": None}


async def test_plain_http_to_the_tls_port_is_not_answered_as_http(make_server_without_docker, tls_files):
    server = await make_server_without_docker(tls_cert=tls_files.cert, tls_key=tls_files.key)
    plain = server.url.replace("https://", "http://")
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(plain + "/health")


async def test_early_answers_over_http2_drop_connection_headers(make_server_without_docker, tls_files):
    """A 413 says ``Connection: close`` and a 426 ``Upgrade`` on HTTP/1.1; HTTP/2 forbids
    both (the h2 stack leaves them out), and the connection goes on serving."""
    server = await make_server_without_docker(tls_cert=tls_files.cert, tls_key=tls_files.key, max_body_bytes=1000)
    async with _h2(server, tls_files) as h2:
        r = await h2.post("/api/generate", content=b"x" * 5000, headers={"content-type": "application/json"})
        assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
        assert "connection" not in r.headers
        r = await h2.get("/ws/stream")
        assert (r.status_code, r.json()["error"]["code"]) == (426, "upgrade_required")
        assert "upgrade" not in r.headers
        r = await h2.get("/health")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
    async with _h2(server, tls_files, http2=False) as h1:
        r = await h1.get("/ws/stream")
        assert r.status_code == 426 and r.headers["upgrade"] == "websocket"


async def test_generate_fast_path_and_wss_stream_over_tls(make_server, tls_files):
    server = await make_server("```python\nprint('hi')\n```", tls_cert=tls_files.cert, tls_key=tls_files.key)
    async with _h2(server, tls_files) as h2:
        r = await h2.post("/api/generate", json={"prompt": "p", "execute": False})
        assert r.status_code == 202 and r.http_version == "HTTP/2", r.text
        assert r.headers["location"] == f"/api/jobs/{r.json()['id']}"
        first = r.json()["id"]
    ws_url = server.url.replace("https://", "wss://") + "/ws/stream"
    events = []
    async with open_websocket_url(ws_url, ssl_context=tls_files.client_context()) as ws:
        await ws.send_message(json.dumps({"job_id": first}))
        with trio.fail_after(30):
            while True:
                events.append(json.loads(await ws.get_message()))
                if events[-1]["type"] == "done":
                    break
    assert events[-1]["job"]["state"] == "COMPLETE"


# --- start-up: a bad or missing certificate is one clear line -----------------------------------


def test_missing_and_mismatched_certificates_are_configuration_errors(tls_files, tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(env={"ATOMIC_TLS_CERT": str(tmp_path / "nope.pem"), "ATOMIC_TLS_KEY": tls_files.key})
    assert str(info.value) == f"ATOMIC_TLS_CERT={str(tmp_path / 'nope.pem')!r}: no such file"
    with pytest.raises(ConfigError) as info:
        config.load(env={"ATOMIC_TLS_CERT": tls_files.cert, "ATOMIC_TLS_KEY": tls_files.other_key})
    assert str(info.value).endswith("the private key does not belong to the certificate")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="not a PEM certificate with its PEM private key"):
        config.load(env={"ATOMIC_TLS_CERT": str(junk), "ATOMIC_TLS_KEY": tls_files.key})
    with pytest.raises(ConfigError, match="ATOMIC_TLS_KEY: expected a PEM file, since ATOMIC_TLS_CERT is set"):
        config.load(env={"ATOMIC_TLS_CERT": tls_files.cert})


def test_serve_with_a_bad_certificate_exits_2_with_one_line(tls_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ATOMIC_TLS_CERT", tls_files.cert)
    monkeypatch.setenv("ATOMIC_TLS_KEY", str(tmp_path / "missing-key.pem"))
    monkeypatch.setenv("ATOMIC_DATA_DIR", str(tmp_path / "data"))
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"atomic: configuration: ATOMIC_TLS_KEY={str(tmp_path / 'missing-key.pem')!r}: no such file"]


# --- the CLI client ---------------------------------------------------------------------------


def _status_args(url: str, ca: str | None) -> argparse.Namespace:
    return argparse.Namespace(url=url, api_key=None, ca=ca, json=True)


async def test_cli_status_over_https_with_the_ca_and_without(make_server_without_docker, tls_files, capsys,
                                                             monkeypatch):
    server = await make_server_without_docker(tls_cert=tls_files.cert, tls_key=tls_files.key)
    monkeypatch.delenv("ATOMIC_CA_FILE", raising=False)
    # Degraded (no Docker here) is exit 1, but the document came over TLS.
    code = await trio.to_thread.run_sync(status, _status_args(server.url, tls_files.ca))
    out, err = capsys.readouterr()
    assert code == 1 and json.loads(out)["status"] == "degraded" and err == ""
    # The same through ATOMIC_CA_FILE.
    monkeypatch.setenv("ATOMIC_CA_FILE", tls_files.ca)
    code = await trio.to_thread.run_sync(status, _status_args(server.url, None))
    assert code == 1 and json.loads(capsys.readouterr().out)["status"] == "degraded"
    monkeypatch.delenv("ATOMIC_CA_FILE")
    # Without the CA the server's certificate is not trusted, and the message says what to do.
    code = await trio.to_thread.run_sync(status, _status_args(server.url, None))
    err = capsys.readouterr().err
    assert code == 1 and "CERTIFICATE_VERIFY_FAILED" in err and "--ca or ATOMIC_CA_FILE" in err


def test_cli_refuses_a_ca_file_that_is_not_one(tmp_path, capsys):
    code = status(_status_args("https://127.0.0.1:1", str(tmp_path / "none.pem")))
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"atomic: configuration: --ca={str(tmp_path / 'none.pem')!r}: no such file")
