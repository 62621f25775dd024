"""Reusable scratch buffers, one set per thread.

The fast CPU convolution writes each chunk's column matrix (about a megabyte) into a buffer. Allocating and
first-touching that memory on every call would cost a page fault per 4 KB page; a buffer kept by the thread and
reused is already mapped, and often still in the core's cache. Each thread has its own buffers, so threads never
share scratch memory. Buffers grow to the largest size asked for and are never shrunk (a few megabytes per thread).
"""
import threading

import numpy as np

_local = threading.local()


def thread_buffer(name, size, dtype):
    """A 1-D array of ``size`` elements of ``dtype``, private to the calling thread; the same memory is returned
    for the same ``name`` and dtype on every call (its contents are whatever the last user left)."""
    store = getattr(_local, "buffers", None)
    if store is None:
        store = _local.buffers = {}
    key = (name, np.dtype(dtype))
    buf = store.get(key)
    if buf is None or buf.size < size:
        buf = store[key] = np.empty(max(size, 1), dtype=dtype)
    return buf[:size]
