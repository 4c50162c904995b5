"""Freed heap memory goes back to the OS between inference chunks (runtime/memory.py)."""

from __future__ import annotations

import ctypes
import platform

import pytest

from petal_labeller.runtime import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_is_returned_on_glibc():
    import psutil

    process = psutil.Process()
    # Mid-sized blocks (below glibc's mmap threshold), every other one kept alive: the
    # freed ones are holes between live blocks, which free() never returns by itself;
    # what inference chunks leave behind. 96 MB of holes; at least half must go back.
    blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(3000)]
    kept = blocks[1::2]
    del blocks
    before = process.memory_info().rss
    assert memory.release_free_memory() is True
    assert before - process.memory_info().rss > 48 * 1024 * 1024
    assert len(kept) == 1500


def test_without_malloc_trim_it_does_nothing(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_free_memory() is False
