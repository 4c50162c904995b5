"""Give freed heap memory back to the operating system after each inference batch
(`handlers.predict_fn`, which `predict_file` and the serve container call a chunk at a time).

Measured with the backlog benchmark (2026-11-27): labelling 5,120 papers with the
production model in 256-line chunks, the process's RSS after each chunk crept
from 729 MB to 1,004 MB (peak 1,256 -> 1,505 MB from 1,000 to 10,000 papers in
the DAG), with no object kept: glibc's malloc keeps the freed activations of
every batch shape in its free lists instead of returning them. `malloc_trim(0)`
after each chunk held it at 610-615 MB with the same throughput (178.7 s vs
178.6 s). `MALLOC_ARENA_MAX=2` did not help (1,042 MB).

Written by hand (ctypes) because neither torch nor the standard library exposes
it; where the C library has no `malloc_trim` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return free heap pages to the OS (glibc); False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
