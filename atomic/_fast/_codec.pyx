# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython twin of :mod:`atomic.ipc.codec`: same names, same semantics, faster framing.

The buffer is a malloc'd byte array with a read offset; frames are copied straight out
of it into new bytes objects. The sentinel and the JSON helpers are shared with the
reference module, so either twin's ``NEED_DATA`` is the same object.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove

from atomic.errors import LocalProtocolError, RemoteProtocolError
from atomic.ipc.codec import HEADER_SIZE, NEED_DATA, dumps, loads

__all__ = [
    "HEADER_SIZE",
    "NEED_DATA",
    "FrameDecoder",
    "dumps",
    "encode_frame",
    "encode_message",
    "loads",
]

cdef object _NEED_DATA = NEED_DATA
cdef Py_ssize_t _INITIAL = 64 * 1024


cdef class FrameDecoder:
    """Splits a byte stream into frames of at most ``max_frame`` payload bytes."""

    cdef unsigned char* _buf
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef bint _eof
    cdef object _error
    cdef readonly Py_ssize_t max_frame

    def __cinit__(self, Py_ssize_t max_frame):
        self._buf = NULL
        self._cap = 0
        self._start = 0
        self._end = 0
        self._eof = False
        self._error = None

    def __init__(self, Py_ssize_t max_frame):
        if max_frame <= 0:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame

    def __dealloc__(self):
        if self._buf != NULL:
            free(self._buf)
            self._buf = NULL

    def __repr__(self):
        return (
            f"<FrameDecoder buffered={self.buffered} max_frame={self.max_frame}"
            f"{' eof' if self._eof else ''}{' failed' if self._error is not None else ''}>"
        )

    @property
    def buffered(self):
        """Bytes received and not yet handed out as frames."""
        return self._end - self._start

    @property
    def eof(self):
        """True once ``receive_data(b"")`` announced the end of the stream."""
        return self._eof

    cdef int _append(self, const unsigned char* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t used = self._end - self._start
        cdef Py_ssize_t need
        cdef Py_ssize_t cap
        cdef unsigned char* grown
        if self._start and self._start == self._end:
            self._start = self._end = 0
            used = 0
        if self._end + n > self._cap:
            # Slide the unread bytes to the front first; grow only if that is not enough.
            if self._start:
                memmove(self._buf, self._buf + self._start, used)
                self._start = 0
                self._end = used
            need = used + n
            if need > self._cap:
                cap = self._cap if self._cap else _INITIAL
                while cap < need:
                    cap *= 2
                grown = <unsigned char*>realloc(self._buf, cap)
                if grown == NULL:
                    raise MemoryError()
                self._buf = grown
                self._cap = cap
        memcpy(self._buf + self._end, data, n)
        self._end += n
        return 0

    def receive_data(self, data):
        """Add bytes that arrived; ``b""`` means the peer closed its side."""
        cdef Py_buffer view
        if type(data) is bytes:
            if PyBytes_GET_SIZE(data) == 0:
                self._eof = True
                return
            if self._eof:
                raise LocalProtocolError("received data after end of stream")
            self._append(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if view.len == 0:
                self._eof = True
                return
            if self._eof:
                raise LocalProtocolError("received data after end of stream")
            self._append(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def next_frame(self):
        """The next complete frame's payload, or ``NEED_DATA``.

        Raises RemoteProtocolError for a length above ``max_frame`` and for an end of
        stream in the middle of a frame; the decoder stays failed afterwards.
        """
        cdef Py_ssize_t avail
        cdef Py_ssize_t length
        cdef const unsigned char* p
        cdef object frame
        if self._error is not None:
            raise self._error
        avail = self._end - self._start
        if avail >= 4:
            p = self._buf + self._start
            length = ((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16)
                      | (<uint32_t>p[2] << 8) | <uint32_t>p[3])
            if length > self.max_frame:
                self._error = RemoteProtocolError(
                    f"frame of {length} bytes exceeds the limit of {self.max_frame}"
                )
                raise self._error
            if avail >= 4 + length:
                frame = PyBytes_FromStringAndSize(<const char*>(p + 4), length)
                self._start += 4 + length
                return frame
        if self._eof and avail:
            self._error = RemoteProtocolError(
                f"connection closed in the middle of a frame ({avail} bytes pending)"
            )
            raise self._error
        return _NEED_DATA


cdef bytes _frame_from(const unsigned char* data, Py_ssize_t n, Py_ssize_t max_frame):
    cdef bytes out
    cdef unsigned char* dst
    if n > max_frame or n > 0xFFFFFFFF:
        raise LocalProtocolError(f"frame of {n} bytes exceeds the limit of {max_frame}")
    out = PyBytes_FromStringAndSize(NULL, n + 4)
    dst = <unsigned char*>PyBytes_AS_STRING(out)
    dst[0] = (n >> 24) & 0xFF
    dst[1] = (n >> 16) & 0xFF
    dst[2] = (n >> 8) & 0xFF
    dst[3] = n & 0xFF
    memcpy(dst + 4, data, n)
    return out


def encode_frame(payload, Py_ssize_t max_frame):
    """``payload`` with its length header; LocalProtocolError when it is too big."""
    cdef Py_buffer view
    if type(payload) is bytes:
        return _frame_from(<const unsigned char*>PyBytes_AS_STRING(payload),
                           PyBytes_GET_SIZE(payload), max_frame)
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        return _frame_from(<const unsigned char*>view.buf, view.len, max_frame)
    finally:
        PyBuffer_Release(&view)


def encode_message(obj, Py_ssize_t max_frame):
    """One message as a ready-to-send frame (``dumps`` then ``encode_frame``)."""
    cdef bytes payload = dumps(obj)
    return _frame_from(<const unsigned char*>PyBytes_AS_STRING(payload),
                       PyBytes_GET_SIZE(payload), max_frame)
