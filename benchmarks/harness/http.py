"""A minimal HTTP/1.1 client on Trio: keep-alive, one request in flight per connection.

Shaped for load generation, not for generality: the request bytes are built once, the
response is read by ``Content-Length`` (or chunked), and nothing is decoded beyond the
status line and the headers the caller needs. A broken connection raises
:class:`HTTPError`; callers decide whether to reconnect.
"""

from __future__ import annotations

import json
from typing import Any

import trio


class HTTPError(Exception):
    pass


def build_request(method: str, host: str, port: int, path: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    hdrs = {"Content-Type": "application/json"} if body else {}
    hdrs.update(headers or {})
    for k, v in hdrs.items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection; :meth:`send` writes raw request bytes, returns the response."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.stream: trio.SocketStream | None = None
        self._buf = bytearray()

    async def connect(self) -> None:
        self.stream = await trio.open_tcp_stream(self.host, self.port)
        self._buf.clear()

    async def aclose(self) -> None:
        if self.stream is not None:
            with trio.move_on_after(1, shield=True):
                await self.stream.aclose()
            self.stream = None

    async def _fill(self) -> None:
        assert self.stream is not None
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise HTTPError(f"connection lost: {exc}") from None
        if not data:
            raise HTTPError("connection closed by the server")
        self._buf += data

    async def _read_until(self, marker: bytes) -> bytes:
        while True:
            i = self._buf.find(marker)
            if i >= 0:
                out = bytes(self._buf[:i])
                del self._buf[: i + len(marker)]
                return out
            await self._fill()

    async def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            await self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def send(self, raw: bytes, *, want_body: bool = True) -> tuple[int, dict[str, str], bytes]:
        if self.stream is None:
            await self.connect()
        assert self.stream is not None
        try:
            await self.stream.send_all(raw)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise HTTPError(f"connection lost: {exc}") from None
        head = await self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise HTTPError(f"bad status line {lines[0]!r}") from None
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await self._read_exact(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self._read_until(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self._read_until(b"\r\n")
                    break
                parts.append(await self._read_exact(size))
                await self._read_exact(2)
            body = b"".join(parts)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            await self.aclose()
        return status, headers, body if want_body else b""

    async def request(self, method: str, path: str, body: Any = None,
                      headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """Convenience: JSON in, (status, decoded JSON or raw bytes) out."""
        data = b"" if body is None else json.dumps(body).encode()
        raw = build_request(method, self.host, self.port, path, data, headers)
        status, hdrs, out = await self.send(raw)
        if hdrs.get("content-type", "").startswith("application/json") and out:
            return status, json.loads(out)
        return status, out


async def get_json(host: str, port: int, path: str) -> tuple[int, Any]:
    conn = Connection(host, port)
    try:
        return await conn.request("GET", path)
    finally:
        await conn.aclose()
