"""The frame codec, both twins, synchronously and exactly."""

from __future__ import annotations

import struct
from typing import ClassVar

import pytest

from atomic import _fast
from atomic.errors import LocalProtocolError, RemoteProtocolError

TWINS = _fast.twins("codec")


def test_both_twins_are_built() -> None:
    names = [t.__name__ for t in TWINS]
    assert names == ["atomic.ipc.codec", "atomic._fast._codec"], "run: python setup.py build_ext --inplace"
    assert TWINS[0].NEED_DATA is TWINS[1].NEED_DATA


def drain(decoder, codec) -> list[bytes]:
    out = []
    while True:
        frame = decoder.next_frame()
        if frame is codec.NEED_DATA:
            return out
        out.append(frame)


@pytest.fixture(params=TWINS, ids=lambda mod: mod.__name__.rsplit(".", 1)[-1])
def codec(request):
    return request.param


class TestCodec:
    payloads: ClassVar[list[bytes]] = [b"{}", b'{"type":"token","id":1,"text":"h\xc3\xa9"}', b"x" * 1000, b"", b'{"a":[1,2,3]}']

    def test_roundtrip_single(self, codec) -> None:
        d = codec.FrameDecoder(1 << 20)
        assert d.next_frame() is codec.NEED_DATA
        d.receive_data(codec.encode_frame(b'{"a":1}', 100))
        assert d.next_frame() == b'{"a":1}'
        assert d.next_frame() is codec.NEED_DATA
        assert d.buffered == 0

    def test_encode_frame_layout(self, codec) -> None:
        assert codec.encode_frame(b"abc", 10) == b"\x00\x00\x00\x03abc"
        assert codec.encode_frame(bytearray(b"abc"), 10) == b"\x00\x00\x00\x03abc"
        assert codec.encode_frame(memoryview(b"abc"), 10) == b"\x00\x00\x00\x03abc"
        assert codec.encode_frame(b"", 10) == b"\x00\x00\x00\x00"
        assert type(codec.encode_frame(b"x", 10)) is bytes

    def test_fragmented_byte_by_byte(self, codec) -> None:
        blob = b"".join(codec.encode_frame(p, 1 << 20) for p in self.payloads)
        d = codec.FrameDecoder(1 << 20)
        got = []
        for i in range(len(blob)):
            d.receive_data(blob[i : i + 1])
            got.extend(drain(d, codec))
        assert got == self.payloads
        assert d.buffered == 0

    def test_coalesced(self, codec) -> None:
        frames = [codec.encode_frame(b'{"i":%d}' % i, 1 << 20) for i in range(5000)]
        blob = b"".join(frames)
        d = codec.FrameDecoder(1 << 20)
        d.receive_data(blob)
        got = drain(d, codec)
        assert got == [b'{"i":%d}' % i for i in range(5000)]

    def test_coalesced_across_odd_chunks(self, codec) -> None:
        payloads: ClassVar[list[bytes]] = [(b"%d" % i) * (i % 37) for i in range(3000)]
        blob = b"".join(codec.encode_frame(p, 1 << 20) for p in payloads)
        d = codec.FrameDecoder(1 << 20)
        got = []
        step = 1
        pos = 0
        while pos < len(blob):
            d.receive_data(bytearray(blob[pos : pos + step]))
            pos += step
            step = step * 7 % 1013 + 1
            got.extend(drain(d, codec))
        assert got == payloads

    def test_limits(self, codec) -> None:
        d = codec.FrameDecoder(10)
        d.receive_data(codec.encode_frame(b"x" * 10, 10))
        assert d.next_frame() == b"x" * 10
        with pytest.raises(LocalProtocolError):
            codec.encode_frame(b"x" * 11, 10)
        # Oversized is refused from the header alone, before the payload arrives.
        d.receive_data(struct.pack(">I", 11))
        with pytest.raises(RemoteProtocolError, match="exceeds"):
            d.next_frame()
        with pytest.raises(RemoteProtocolError):  # stays failed
            d.next_frame()

    def test_huge_length_header(self, codec) -> None:
        d = codec.FrameDecoder(8 << 20)
        d.receive_data(b"\xff\xff\xff\xff" + b"{}")
        with pytest.raises(RemoteProtocolError):
            d.next_frame()

    def test_eof_clean(self, codec) -> None:
        d = codec.FrameDecoder(100)
        d.receive_data(codec.encode_frame(b"{}", 100))
        d.receive_data(b"")
        assert d.eof
        assert d.next_frame() == b"{}"
        assert d.next_frame() is codec.NEED_DATA

    @pytest.mark.parametrize("cut", [1, 3, 4, 6])
    def test_eof_mid_frame(self, codec, cut: int) -> None:
        d = codec.FrameDecoder(100)
        d.receive_data(codec.encode_frame(b'{"ab":1}', 100)[:cut])
        assert d.next_frame() is codec.NEED_DATA
        d.receive_data(b"")
        with pytest.raises(RemoteProtocolError, match="middle of a frame"):
            d.next_frame()

    def test_data_after_eof_is_a_local_error(self, codec) -> None:
        d = codec.FrameDecoder(100)
        d.receive_data(b"")
        with pytest.raises(LocalProtocolError):
            d.receive_data(b"x")

    def test_bad_max_frame(self, codec) -> None:
        with pytest.raises(ValueError):
            codec.FrameDecoder(0)

    def test_json_helpers(self, codec) -> None:
        obj = {"type": "token", "id": 7, "text": "héllo ✓"}
        assert codec.loads(codec.dumps(obj)) == obj
        assert codec.loads(bytearray(codec.dumps(obj))) == obj
        frame = codec.encode_message(obj, 1000)
        d = codec.FrameDecoder(1000)
        d.receive_data(frame)
        assert codec.loads(d.next_frame()) == obj
        with pytest.raises(LocalProtocolError):
            codec.encode_message({"x": "y" * 100}, 10)
        with pytest.raises(LocalProtocolError):
            codec.dumps({"x": object()})

    @pytest.mark.parametrize(
        "garbage", [b"", b"{", b"not json", b"\xff\xfe{}", b"[1,2]", b'"str"', b"3", b"null", b"{}x"]
    )
    def test_garbage(self, codec, garbage: bytes) -> None:
        with pytest.raises(RemoteProtocolError):
            codec.loads(garbage)

    def test_buffer_is_compacted(self, codec) -> None:
        # Many frames through one decoder: buffered stays small (no unbounded growth).
        d = codec.FrameDecoder(1 << 20)
        frame = codec.encode_frame(b"y" * 100, 1 << 20)
        for _ in range(20000):
            d.receive_data(frame + frame[:50])
            assert drain(d, codec) == [b"y" * 100]
            d.receive_data(frame[50:])
            assert drain(d, codec) == [b"y" * 100]
        assert d.buffered == 0
        assert "FrameDecoder" in repr(d)
