"""The baseline: a bare ASGI app doing the least the same routes must do.

    hypercorn -k trio -b 127.0.0.1:PORT benchmarks.baseline_app:app

``GET /health`` answers 200 ``{"status": "ok"}``; ``POST /api/generate`` reads the body,
parses it with the same JSON decoder Atomic uses and answers 202 with a small job
document; anything else is 404. No framework, no hooks, no store: what Hypercorn's Trio
worker gives a route for free, against which Atomic's routes are measured.
"""

from __future__ import annotations

import itertools

import msgspec

_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()
_ids = itertools.count(1)

JSON = [(b"content-type", b"application/json")]
HEALTH = b'{"status":"ok"}'


async def _respond(send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = JSON + [(b"content-length", str(len(body)).encode())] + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/health" and method == "GET":
        await _respond(send, 200, HEALTH)
        return
    if path == "/api/generate" and method == "POST":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        try:
            body = _decode.decode(b"".join(chunks))
        except msgspec.DecodeError:
            await _respond(send, 400, b'{"error":{"code":"invalid_json","message":"bad JSON"}}')
            return
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            await _respond(send, 422, b'{"error":{"code":"validation_error","message":"prompt"}}')
            return
        job_id = f"{next(_ids):032x}"
        doc = {"id": job_id, "state": "QUEUED", "priority": body.get("priority", "normal"), "request": body}
        await _respond(send, 202, _encode.encode(doc), [(b"location", f"/api/jobs/{job_id}".encode())])
        return
    await _respond(send, 404, b'{"error":{"code":"not_found","message":"no route"}}')
