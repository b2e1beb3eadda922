"""Test helpers: replay recorded vendor wire bytes beneath the real provider code.

Only the transport is scripted: an ``httpx``/``httpx2`` ``MockTransport`` answering with the
bytes under ``wire/``, or a botocore ``before-send`` hook answering with a raw streaming
body that carries the AWS event-stream encoding built by :func:`encode_event_message`.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import traceback
import zlib
from collections.abc import Iterable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import trio

from atomic.agent.providers.base import Finish, Message, ProviderRequest, TextDelta

WIRE = Path(__file__).parent / "wire"

REQUEST = ProviderRequest(
    messages=(
        Message("system", "You write Python."),
        Message("user", "Print hello."),
    ),
    max_tokens=64,
    temperature=0.0,
    seed=7,
    stop=("```\n",),
)


def wire(name: str) -> bytes:
    return (WIRE / name).read_bytes()


async def collect(provider: Any, request: ProviderRequest = REQUEST) -> tuple[str, Finish, list[TextDelta]]:
    """Run one stream to its end; check the contract: deltas, then exactly one Finish, last."""
    events: list[Any] = []
    async with aclosing(provider.stream(request)) as stream:
        async for event in stream:
            events.append(event)
    assert events and isinstance(events[-1], Finish), events
    deltas = events[:-1]
    assert all(isinstance(e, TextDelta) for e in deltas), events
    return "".join(d.text for d in deltas), events[-1], deltas


class Replay:
    """A MockTransport handler: records each request, answers with a scripted response."""

    def __init__(
        self,
        lib: Any,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        stream: Any = None,
        raises: Exception | None = None,
    ) -> None:
        self.lib = lib
        self.body = body
        self.status = status
        self.headers = headers or {"content-type": "text/event-stream"}
        self.stream = stream
        self.raises = raises
        self.requests: list[Any] = []

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        if self.raises is not None:
            raise self.raises
        if self.stream is not None:
            return self.lib.Response(self.status, headers=self.headers, stream=self.stream)
        return self.lib.Response(self.status, headers=self.headers, content=self.body)

    def client(self) -> Any:
        return self.lib.AsyncClient(transport=self.lib.MockTransport(self))

    @property
    def request(self) -> Any:
        assert len(self.requests) == 1, self.requests
        return self.requests[0]

    def json(self) -> Any:
        return json.loads(self.request.content)


def hanging_stream(lib: Any, first: bytes) -> Any:
    """A response body that sends ``first`` and then nothing, until it is closed."""

    class Hanging(lib.AsyncByteStream):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.closed = False

        async def __aiter__(self) -> Any:
            yield first
            await trio.sleep_forever()

        async def aclose(self) -> None:
            self.closed = True

    return Hanging()


def first_event(data: bytes) -> bytes:
    """The first two SSE events of a recording (enough for one text delta)."""
    parts = data.split(b"\n\n")
    return b"\n\n".join(parts[:2]) + b"\n\n"


def leaked(secret: str, *texts: str) -> list[str]:
    return [t for t in texts if secret in t]


def error_text(exc: BaseException) -> str:
    """Everything a log line of this exception could show, cause chain included."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(getattr(exc, "details", ""))


def log_text(caplog: Any) -> str:
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records if r.levelno >= logging.DEBUG
    )


# --- AWS event stream (application/vnd.amazon.eventstream) -----------------------------
#
# message  := prelude headers payload message_crc
# prelude  := total_length:u32 headers_length:u32 prelude_crc:u32   (big-endian)
# header   := name_length:u8 name value_type:u8 value   (type 7 = string: u16 length + UTF-8)
# CRCs are CRC32 (the zlib/IEEE polynomial); prelude_crc covers the first 8 bytes,
# message_crc everything before it.

_STRING = 7


def _encode_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    )


def encode_event_message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded_headers = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = 12 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded_headers + payload
    return message + struct.pack("!I", zlib.crc32(message))


def encode_event_file(name: str) -> bytes:
    """A ``wire/*.jsonl`` recording (headers + JSON payload per line) as event-stream bytes."""
    out = b""
    for line in (WIRE / name).read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            payload = json.dumps(item["payload"], separators=(",", ":")).encode()
            out += encode_event_message(item["headers"], payload)
    return out


def chunked(data: bytes, size: int = 37) -> list[bytes]:
    """Bytes in odd-sized pieces, as a socket delivers them (messages straddle reads)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


class RawBody:
    """What botocore reads a streaming HTTP body through (``stream()``, ``close()``).

    With ``hang=True`` the body stops after its chunks and blocks like a socket read until
    someone closes it.
    """

    def __init__(self, chunks: Iterable[bytes], *, hang: bool = False) -> None:
        self._chunks = list(chunks)
        self._hang = hang
        self.closed = threading.Event()

    def stream(self, **_: Any) -> Any:
        for chunk in self._chunks:
            if self.closed.is_set():
                return
            yield chunk
        if self._hang:
            self.closed.wait(30)

    def read(self, *_: Any) -> bytes:
        return b"".join(self._chunks)

    def close(self) -> None:
        self.closed.set()
