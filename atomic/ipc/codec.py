"""The IPC frame codec, sans-IO: bytes in, frames out; messages in, bytes out.

A frame is a 4-byte big-endian unsigned length, then that many bytes of UTF-8 JSON holding
one object. The codec knows no sockets (h11's shape): feed it what arrived with
:meth:`FrameDecoder.receive_data`, take complete frames with :meth:`FrameDecoder.next_frame`
until it answers :data:`NEED_DATA`. This module is the reference twin; the Cython module
``atomic._fast._codec`` has the same names and semantics, and ``atomic._fast.load("codec")``
chooses between them.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import msgspec

from ..errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "HEADER_SIZE",
    "NEED_DATA",
    "FrameDecoder",
    "dumps",
    "encode_frame",
    "encode_message",
    "loads",
]

HEADER_SIZE: Final = 4
_HEADER = struct.Struct(">I")
_MAX_LENGTH = 0xFFFFFFFF


class _NeedData:
    """Sentinel type: no complete frame is buffered yet."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"

    def __reduce__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


class FrameDecoder:
    """Splits a byte stream into frames of at most ``max_frame`` payload bytes."""

    __slots__ = ("_buf", "_eof", "_error", "_pos", "max_frame")

    def __init__(self, max_frame: int) -> None:
        if max_frame <= 0:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes in _buf
        self._eof = False
        self._error: RemoteProtocolError | None = None

    def __repr__(self) -> str:
        return (
            f"<FrameDecoder buffered={self.buffered} max_frame={self.max_frame}"
            f"{' eof' if self._eof else ''}{' failed' if self._error else ''}>"
        )

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as frames."""
        return len(self._buf) - self._pos

    @property
    def eof(self) -> bool:
        """True once ``receive_data(b"")`` announced the end of the stream."""
        return self._eof

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes that arrived; ``b""`` means the peer closed its side."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("received data after end of stream")
        buf = self._buf
        pos = self._pos
        # Drop consumed bytes only once they are at least half the buffer: each byte is
        # then moved O(1) times, however the input is split or coalesced.
        if pos:
            if pos == len(buf):
                buf.clear()
                self._pos = 0
            elif pos >= (len(buf) >> 1):
                del buf[:pos]
                self._pos = 0
        buf += data

    def next_frame(self) -> bytes | _NeedData:
        """The next complete frame's payload, or :data:`NEED_DATA`.

        Raises RemoteProtocolError for a length above ``max_frame`` and for an end of
        stream in the middle of a frame; the decoder stays failed afterwards.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail >= HEADER_SIZE:
            (length,) = _HEADER.unpack_from(buf, pos)
            if length > self.max_frame:
                self._error = RemoteProtocolError(
                    f"frame of {length} bytes exceeds the limit of {self.max_frame}"
                )
                raise self._error
            end = pos + HEADER_SIZE + length
            if end <= len(buf):
                self._pos = end
                return bytes(buf[pos + HEADER_SIZE : end])
        if self._eof and avail:
            self._error = RemoteProtocolError(
                f"connection closed in the middle of a frame ({avail} bytes pending)"
            )
            raise self._error
        return NEED_DATA


def encode_frame(payload: bytes | bytearray | memoryview, max_frame: int) -> bytes:
    """``payload`` with its length header; LocalProtocolError when it is too big."""
    n = len(payload)
    if n > max_frame or n > _MAX_LENGTH:
        raise LocalProtocolError(f"frame of {n} bytes exceeds the limit of {max_frame}")
    return _HEADER.pack(n) + bytes(payload)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def dumps(obj: Any) -> bytes:
    """JSON bytes for ``obj``; LocalProtocolError when it cannot be encoded."""
    try:
        return _encoder.encode(obj)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise LocalProtocolError(f"cannot encode message: {exc}") from None


def loads(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The JSON object in ``data``; RemoteProtocolError for garbage or a non-object."""
    try:
        obj = _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as exc:
        raise RemoteProtocolError(f"frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"frame holds a JSON {type(obj).__name__}, not an object")
    return obj


def encode_message(obj: Any, max_frame: int) -> bytes:
    """One message as a ready-to-send frame (``dumps`` then ``encode_frame``)."""
    return encode_frame(dumps(obj), max_frame)
