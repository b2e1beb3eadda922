"""``WS /ws/stream``: start or follow a job and receive its events.

One reader task takes client messages (the first one starts or follows a job; later a
``cancel``); one writer task drains the client's :class:`EventBuffer` and stamps each frame
with ``job_id`` and a ``seq`` that rises by one. The job pushes into the buffer without
ever waiting, so a slow reader never slows the job: its pending ``token``/``output``
events are coalesced, while ``state`` and ``done`` are never dropped.
"""

from __future__ import annotations

import logging
from typing import Any
from collections.abc import Callable

import msgspec
import trio
from quart import websocket
from quart_trio import QuartTrio

from .. import errors
from ..pipeline import request as reqs
from ..pipeline.job import EventBuffer
from ..pipeline.languages import supported
from .runtime import Runtime

log = logging.getLogger("atomic.ws")
_enc = msgspec.json.Encoder()


class _Closed(Exception):
    pass


def register_websocket(app: QuartTrio, rt: Runtime, authorized: Callable[..., bool]) -> None:
    @app.websocket("/ws/stream")
    async def stream() -> Any:
        if not authorized(websocket.headers, websocket.args.get("token")):
            return _reject(401, "unauthorized", "a valid API key is required (Authorization header or ?token=)")
        await websocket.accept()
        rt.metrics.ws_opened()
        try:
            await _session(rt)
        finally:
            rt.metrics.ws_closed()


def _reject(status: int, code: str, message: str) -> Any:
    from quart import Response

    return Response(_enc.encode({"error": {"code": code, "message": message}}), status=status,
                    content_type="application/json")


async def _receive_json() -> Any:
    raw = await websocket.receive()
    try:
        return msgspec.json.decode(raw.encode() if isinstance(raw, str) else raw)
    except msgspec.DecodeError:
        raise errors.InvalidJSON("the message is not valid JSON") from None


async def _session(rt: Runtime) -> None:
    seq = 0
    job_id: str | None = None
    failed = False

    async def send(event: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        await websocket.send(_enc.encode({**event, "job_id": job_id, "seq": seq}).decode())

    async def fail(exc: errors.AtomicError) -> None:
        nonlocal failed
        failed = True
        await send({"type": "error", "error": exc.to_dict()})
        await websocket.close(1008)

    # The first message (or ?job_id=) says what to do.
    try:
        follow = websocket.args.get("job_id")
        if follow is None:
            with trio.fail_after(30):
                first = await _receive_json()
            if not isinstance(first, dict):
                raise errors.ValidationError("message", "expected a JSON object")
            if "job_id" in first and "prompt" not in first:
                follow = first["job_id"]
                if not isinstance(follow, str):
                    raise errors.ValidationError("job_id", "expected a string")
        if follow is not None:
            job = await rt.manager.job(follow)
            if job.state.terminal:
                buf = job.watch()  # its done, at once
            else:
                # A follower first learns where the job is, then sees it move on.
                buf = EventBuffer()
                buf.push({"type": "state", "state": job.state.value, "progress": round(job.progress, 4)})
                job.add_watcher(buf)
        else:
            req = reqs.parse_generate(first, supported=supported(rt.sandbox.languages()))
            rt.sandbox.resolve_limits(req["limits"] or None)
            buf = EventBuffer()
            job = await rt.manager.submit(req, watcher=buf)
    except trio.TooSlowError:
        await fail(errors.ValidationError("message", "no start message within 30 s"))
        return
    except errors.AtomicError as exc:
        await fail(exc)
        return

    job_id = job.id
    if follow is None:
        await send({"type": "accepted", "job": job.take_accepted()})

    async def reader(cancel_scope: trio.CancelScope) -> None:
        while True:
            try:
                msg = await _receive_json()
            except errors.InvalidJSON as exc:
                await fail(exc)
                cancel_scope.cancel()
                return
            if isinstance(msg, dict) and msg.get("type") == "cancel":
                try:
                    await rt.manager.cancel(job.id)
                except errors.JobFinished:
                    pass
            else:
                await fail(errors.ValidationError("type", "expected {\"type\": \"cancel\"}"))
                cancel_scope.cancel()
                return

    async def on_shutdown(cancel_scope: trio.CancelScope) -> None:
        await rt.stopping.wait()
        cancel_scope.cancel()
        with trio.move_on_after(1, shield=True):
            await websocket.close(1001)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader, nursery.cancel_scope)
            nursery.start_soon(on_shutdown, nursery.cancel_scope)
            while True:
                batch = await buf.get_batch()
                if not batch:
                    break
                for event in batch:
                    await send(event)
            nursery.cancel_scope.cancel()
        if not rt.stopping.is_set() and not failed:
            await websocket.close(1000)
    finally:
        job.unwatch(buf)
