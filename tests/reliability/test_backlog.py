"""A scaled-down `benchmarks/backlog.py`: a backlog labelled in chunks, every paper once,
and memory that does not grow with the backlog (the full 100,000-paper run is the
benchmark; numbers in docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from benchmarks.backlog import measure
from petal_labeller.store.connection import resolve_url

pytestmark = pytest.mark.slow

CHUNK = 50


def test_chunked_backlog_labels_everything_in_bounded_memory(tiny_model_tar, tmp_path):
    small, large = (
        measure(resolve_url(), size, "chunked", CHUNK, tiny_model_tar, tmp_path, heap=True)
        for size in (CHUNK, 4 * CHUNK)
    )
    print("backlog rows:", small, large, sep="\n")

    # measure() has checked every paper is marked once and no label row is duplicated.
    assert (small["papers"], small["batches"]) == (CHUNK, 1)
    assert (large["papers"], large["batches"]) == (4 * CHUNK, 4)
    assert large["label_rows"] >= large["papers"]
    # Four times the backlog, the same Python heap peak (allocator noise aside) ...
    assert large["python_heap_peak_mb"] <= 1.25 * small["python_heap_peak_mb"] + 1.0
    # ... and the same process peak (torch, model and one chunk).
    assert large["peak_rss_mb"] <= small["peak_rss_mb"] + 64
