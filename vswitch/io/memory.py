"""Process-wide allocator settings for a forwarding daemon.

Every frame read from a port becomes a fresh ``bytes`` object.  For a TCP
GSO super-frame that is a ~64 KiB ``malloc``, under glibc's 128 KiB mmap
threshold, so it comes from the heap; when a batch of them is freed, the free
top of the heap exceeds ``M_TRIM_THRESHOLD`` (128 KiB), glibc hands it back
to the kernel, and the next batch faults every page in again: measured as
1.7-4.9 minor faults per forwarded frame and about a fifth of TCP throughput
(docs/performance.md, "Peers").  Raising the trim threshold and keeping a
top pad stops that churn; the heap then stays at its high-water mark.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2


def keep_heap(trim_threshold: int = 1 << 30, top_pad: int = 64 << 20) -> bool:
    """Tell glibc's malloc not to return freed heap memory to the kernel; False if not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, trim_threshold)) and bool(mallopt(M_TOP_PAD, top_pad))
