"""glibc's allocator, set for a server that handles blocks of up to 1 MiB (`parsec-server run`).

A 512 KiB block passes through several buffers of its size (the request body, msgpack, asyncpg's
buffers, the reply). glibc serves an allocation that large with a fresh `mmap` unless its
*dynamic* threshold has risen past that size, and gives the top of its heap back to the system
(`brk` down) whenever more than twice that threshold is free there. With 16 requests in flight both
happen all the time: the process touched fresh pages for about one 512 KiB buffer per block_read
(~170 minor page faults, ~20 % of the server's CPU per 512 KiB read; bench/write_cost.py and
docs/dev/performance.md, "Large blocks").

`tune()` fixes both thresholds: allocations below 4 MiB come from the heap, and the heap keeps up to
64 MiB of free memory at its top instead of returning it. The cost is memory: a process keeps what
its busiest moment needed, up to 64 MiB more than without. Nothing is changed when the operator set
the allocator through the environment (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`,
`GLIBC_TUNABLES`) or when the C library is not glibc (musl has no `mallopt`).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune"]

MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def tune() -> bool:
    """Set glibc's mmap and trim thresholds (see the module docstring). True if they were set."""
    if any(name in os.environ for name in _OPERATOR_SETTINGS):
        return False
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")  # None (or an error) without glibc
    except (ValueError, OSError):
        glibc = None
    if not glibc:
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
