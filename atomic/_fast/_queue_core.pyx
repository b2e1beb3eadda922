# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython twin of :mod:`atomic.queue_core` (the reference: read it first).

The same bucketed sorted list, with the buckets as C arrays of ``(key, seq, slot)``
structs: comparisons are two C compares instead of tuple rich-compares, and moves within
a bucket are ``memmove``. Ids live in a Python list indexed by slot, found by a dict.
Each bucket keeps a ``start`` offset so popping its first entry is O(1).
"""

from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memmove, memcpy

cdef enum:
    LOAD = 256
    CAP = 512  # 2 * LOAD: a bucket that fills splits in two


cdef struct Entry:
    double key
    long long seq
    Py_ssize_t slot


cdef struct Bucket:
    Entry* data
    Py_ssize_t start
    Py_ssize_t n


cdef inline bint _lt(double k1, long long s1, double k2, long long s2) noexcept nogil:
    return k1 < k2 or (k1 == k2 and s1 < s2)


cdef class QueueCore:
    """Item ids in ascending ``(key, seq)`` order; ``seq`` unique per item."""

    cdef Bucket* _b
    cdef Py_ssize_t _nb
    cdef Py_ssize_t _capb
    cdef double* _skey
    cdef long long* _sseq
    cdef Py_ssize_t* _free
    cdef Py_ssize_t _nfree
    cdef Py_ssize_t _caps
    cdef list _ids
    cdef dict _index

    def __cinit__(self):
        self._b = NULL
        self._nb = 0
        self._capb = 0
        self._skey = NULL
        self._sseq = NULL
        self._free = NULL
        self._nfree = 0
        self._caps = 0
        self._ids = []
        self._index = {}

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._b != NULL:
            for i in range(self._nb):
                free(self._b[i].data)
            free(self._b)
        free(self._skey)
        free(self._sseq)
        free(self._free)

    def __len__(self):
        return len(self._index)

    def __contains__(self, item_id):
        return item_id in self._index

    def __repr__(self):
        return f"<atomic._fast._queue_core.QueueCore len={len(self._index)} buckets={self._nb}>"

    # --- memory -----------------------------------------------------------------------

    cdef Py_ssize_t _alloc_slot(self, object item_id, double key, long long seq) except -1:
        cdef Py_ssize_t slot, cap
        if self._nfree:
            self._nfree -= 1
            slot = self._free[self._nfree]
            self._ids[slot] = item_id
        else:
            slot = len(self._ids)
            if slot == self._caps:
                cap = 64 if self._caps == 0 else self._caps * 2
                self._skey = <double*>_grow(self._skey, cap * sizeof(double))
                self._sseq = <long long*>_grow(self._sseq, cap * sizeof(long long))
                self._free = <Py_ssize_t*>_grow(self._free, cap * sizeof(Py_ssize_t))
                self._caps = cap
            self._ids.append(item_id)
        self._skey[slot] = key
        self._sseq[slot] = seq
        return slot

    cdef object _free_slot(self, Py_ssize_t slot):
        item_id = self._ids[slot]
        self._ids[slot] = None
        self._free[self._nfree] = slot
        self._nfree += 1
        del self._index[item_id]
        return item_id

    cdef int _insert_bucket(self, Py_ssize_t at, Entry* data, Py_ssize_t n) except -1:
        if self._nb == self._capb:
            self._capb = 8 if self._capb == 0 else self._capb * 2
            self._b = <Bucket*>_grow(self._b, self._capb * sizeof(Bucket))
        memmove(&self._b[at + 1], &self._b[at], (self._nb - at) * sizeof(Bucket))
        self._b[at].data = data
        self._b[at].start = 0
        self._b[at].n = n
        self._nb += 1
        return 0

    cdef void _drop_bucket(self, Py_ssize_t i) noexcept:
        if self._nb == 1:
            self._b[0].start = 0  # keep the last bucket's memory for the next push
            return
        free(self._b[i].data)
        memmove(&self._b[i], &self._b[i + 1], (self._nb - i - 1) * sizeof(Bucket))
        self._nb -= 1

    # --- search -----------------------------------------------------------------------

    cdef Py_ssize_t _bucket_for(self, double key, long long seq) noexcept:
        """First bucket whose last entry is not below (key, seq); _nb if none."""
        cdef Py_ssize_t lo = 0, hi = self._nb, mid
        cdef Entry* e
        while lo < hi:
            mid = (lo + hi) >> 1
            e = &self._b[mid].data[self._b[mid].start + self._b[mid].n - 1]
            if _lt(e.key, e.seq, key, seq):
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef Py_ssize_t _lower(self, Py_ssize_t i, double key, long long seq) noexcept:
        cdef Entry* d = self._b[i].data + self._b[i].start
        cdef Py_ssize_t lo = 0, hi = self._b[i].n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if _lt(d[mid].key, d[mid].seq, key, seq):
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef int _locate(self, Py_ssize_t slot, Py_ssize_t* bi, Py_ssize_t* bj) except -1:
        cdef double key = self._skey[slot]
        cdef long long seq = self._sseq[slot]
        cdef Py_ssize_t i = self._bucket_for(key, seq)
        cdef Py_ssize_t j = self._lower(i, key, seq)
        # Equal (key, seq) pairs only occur if a caller broke the unique-seq rule; walk them.
        while self._b[i].data[self._b[i].start + j].slot != slot:
            j += 1
            if j == self._b[i].n:
                i += 1
                j = 0
        bi[0] = i
        bj[0] = j
        return 0

    # --- the API ----------------------------------------------------------------------

    def push(self, double key, long long seq, item_id):
        """Add ``item_id`` with sort key ``(key, seq)``. ValueError if it is already in."""
        cdef Py_ssize_t slot, i, j, n
        cdef Bucket* b
        cdef Entry* half
        if item_id in self._index:
            raise ValueError(f"{item_id!r} is already queued")
        slot = self._alloc_slot(item_id, key, seq)
        self._index[item_id] = slot
        if self._nb == 0:
            self._insert_bucket(0, <Entry*>_grow(NULL, CAP * sizeof(Entry)), 0)
        if self._b[0].n == 0:  # empty: only then may a (the single) bucket be empty
            i = 0
            j = 0
        else:
            i = self._bucket_for(key, seq)
            if i == self._nb:
                i -= 1
                j = self._b[i].n
            else:
                j = self._lower(i, key, seq)
        b = &self._b[i]
        n = b.n
        if b.start + n == CAP:
            memmove(b.data, b.data + b.start, n * sizeof(Entry))
            b.start = 0
        memmove(b.data + b.start + j + 1, b.data + b.start + j, (n - j) * sizeof(Entry))
        b.data[b.start + j].key = key
        b.data[b.start + j].seq = seq
        b.data[b.start + j].slot = slot
        b.n = n + 1
        if b.n == CAP:
            half = <Entry*>_grow(NULL, CAP * sizeof(Entry))
            memcpy(half, b.data + b.start + LOAD, LOAD * sizeof(Entry))
            b.n = LOAD
            self._insert_bucket(i + 1, half, LOAD)  # may move self._b: b is stale after

    def pop(self):
        """Remove and return the id with the smallest ``(key, seq)``. IndexError if empty."""
        cdef Bucket* b
        cdef Py_ssize_t slot
        if not self._index:
            raise IndexError("pop from an empty QueueCore")
        b = &self._b[0]
        slot = b.data[b.start].slot
        b.start += 1
        b.n -= 1
        if b.n == 0:
            self._drop_bucket(0)
        return self._free_slot(slot)

    def peek(self):
        """The id ``pop`` would return, left in place. IndexError if empty."""
        if not self._index:
            raise IndexError("peek at an empty QueueCore")
        return self._ids[self._b[0].data[self._b[0].start].slot]

    def remove(self, item_id):
        """Drop ``item_id``; False when it was not queued."""
        cdef Py_ssize_t slot, i, j
        cdef Bucket* b
        found = self._index.get(item_id)
        if found is None:
            return False
        slot = found
        self._locate(slot, &i, &j)
        b = &self._b[i]
        if j < b.n // 2:
            memmove(b.data + b.start + 1, b.data + b.start, j * sizeof(Entry))
            b.start += 1
        else:
            memmove(b.data + b.start + j, b.data + b.start + j + 1, (b.n - j - 1) * sizeof(Entry))
        b.n -= 1
        if b.n == 0:
            self._drop_bucket(i)
        self._free_slot(slot)
        return True

    def position(self, item_id):
        """How many items come out before ``item_id``; None when it is not queued."""
        cdef Py_ssize_t slot, i, j, k, total
        found = self._index.get(item_id)
        if found is None:
            return None
        slot = found
        self._locate(slot, &i, &j)
        total = j
        for k in range(i):
            total += self._b[k].n
        return total


cdef void* _grow(void* p, size_t size) except NULL:
    cdef void* q = realloc(p, size)
    if q == NULL:
        raise MemoryError()
    return q
