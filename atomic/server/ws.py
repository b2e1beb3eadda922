"""``WS /ws/stream``: start or follow a job and receive its events.

One reader task takes client messages (the first one starts or follows a job; later a
``cancel``); one writer task drains the client's :class:`EventBuffer` and stamps each frame
with ``job_id`` and a ``seq`` that rises by one. The job pushes into the buffer without
ever waiting, so a slow reader never slows the job: its pending ``token``/``output``
events are coalesced, while ``state`` and ``done`` are never dropped. Messages are the
contract's (:mod:`atomic.contract.stream`); a bad one gets an ``error`` event, then 1008.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec
import trio
from quart import Blueprint, websocket

from .. import errors, tracing
from ..contract import (
    AcceptedEvent,
    CancelMessage,
    ErrorEvent,
    ErrorInfo,
    FollowMessage,
    GenerateRequest,
    StateEvent,
    decode_json,
)
from ..contract.decode import field_error
from ..contract.stream import Event
from ..pipeline.job import EventBuffer, Job
from .http import authorized, error_response, runtime
from .state import Runtime

log = logging.getLogger("atomic.ws")
T = TypeVar("T")

stream_routes = Blueprint("atomic_ws", __name__)


@stream_routes.websocket("/ws/stream")
async def stream() -> Any:
    rt = runtime()
    if not authorized(websocket.headers.get("Authorization"), websocket.args.get("token"), rt.settings.api_keys):
        return error_response(errors.Unauthorized(
            "a valid API key is required (Authorization header or ?token=)"))
    await websocket.accept()
    rt.metrics.ws_opened()
    try:
        await _session(rt)
    finally:
        rt.metrics.ws_closed()


async def _receive() -> Any:
    raw = await websocket.receive()
    return decode_json(raw.encode() if isinstance(raw, str) else raw, "the message")


def _convert(value: Any, type_: type[T]) -> T:
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        raise field_error(exc) from None


async def _session(rt: Runtime) -> None:
    seq = 0
    job_id: str | None = None
    failed = False

    async def send(event: Event) -> None:
        nonlocal seq
        seq += 1
        frame = msgspec.structs.replace(event, job_id=job_id, seq=seq)
        await websocket.send(msgspec.json.encode(frame).decode())

    async def fail(exc: errors.AtomicError) -> None:
        nonlocal failed
        failed = True
        await send(ErrorEvent(error=ErrorInfo(code=exc.code, message=exc.message)))
        await websocket.close(1008)

    # The first message (or ?job_id=) says what to do.
    follow = websocket.args.get("job_id")
    try:
        if follow is None:
            with trio.fail_after(rt.settings.ws_first_message_s):
                first = await _receive()
            if not isinstance(first, dict):
                raise errors.ValidationError("message", "expected a JSON object")
            if "job_id" in first and "prompt" not in first:
                follow = _convert(first, FollowMessage).job_id
        if follow is not None:
            job = await rt.manager.job(follow)
            buf = _follow(job)
        else:
            req = _convert(first, GenerateRequest)
            rt.check_job(req)
            buf = EventBuffer()
            traceparent = websocket.headers.get("traceparent") if tracing.enabled() else None
            job = await rt.manager.submit(req.spec(), watcher=buf, traceparent=traceparent)
    except trio.TooSlowError:
        await fail(errors.ValidationError("message", f"no start message within {rt.settings.ws_first_message_s:g} s"))
        return
    except errors.AtomicError as exc:
        await fail(exc)
        return

    job_id = job.id
    if follow is None:
        await send(AcceptedEvent(job=job.take_accepted()))

    async def reader(cancel_scope: trio.CancelScope) -> None:
        while True:
            try:
                _convert(await _receive(), CancelMessage)
            except errors.AtomicError as exc:
                if isinstance(exc, errors.ValidationError):
                    exc = errors.ValidationError("type", 'expected {"type": "cancel"}')
                await fail(exc)
                cancel_scope.cancel()
                return
            try:
                await rt.manager.cancel(job.id)
            except errors.JobFinished:
                pass

    async def on_shutdown(cancel_scope: trio.CancelScope) -> None:
        await rt.stopping.wait()
        cancel_scope.cancel()
        with trio.move_on_after(rt.settings.ws_close_s, shield=True):
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


def _follow(job: Job) -> EventBuffer:
    if job.state.terminal:
        return job.watch()  # its done, at once
    # A follower first learns where the job is, then sees it move on.
    buf = EventBuffer()
    buf.push(StateEvent(state=job.state.value, progress=round(job.progress, 4)))
    job.add_watcher(buf)
    return buf


__all__ = ["stream_routes"]
