"""A scaled-down `benchmarks/backlog.py`: a backlog labelled in ONE run (one transaction),
every paper once, with memory that does not grow with the backlog (the full
100,000-paper run through the DAG is the benchmark; numbers in docs/benchmarks.md).

`single` runs the steps the labelling DAG's tasks call (`stage_pending` ->
`predict_file` -> `check_output` -> `write_labels`) in a fresh process, tracing
the Python heap after the model is loaded. Both sizes are above one inference
chunk (`CHUNK_LINES`), so inference holds the same amount in both.
"""

from __future__ import annotations

import pytest

from benchmarks.backlog import measure
from petal_labeller.model.predict import CHUNK_LINES
from petal_labeller.store.connection import resolve_url

pytestmark = pytest.mark.slow

SMALL = 300
#: Headroom for allocator and driver noise, far below what holding the rows costs:
#: a label row kept in memory is about 150 bytes and there are about 6 per paper.
NOISE_MB = 0.15


def test_one_run_labels_a_backlog_in_memory_that_does_not_grow(tiny_model_tar, tmp_path):
    assert SMALL > CHUNK_LINES
    small, large = (
        measure(resolve_url(), size, "single", 0, tiny_model_tar, tmp_path, heap=True)
        for size in (SMALL, 4 * SMALL)
    )
    print("backlog rows:", small, large, sep="\n")

    # measure() has checked every paper is marked once and no label row is duplicated.
    assert (small["papers"], small["batches"]) == (SMALL, 1)
    assert (large["papers"], large["batches"]) == (4 * SMALL, 1)
    assert large["label_rows"] == large["labels"] >= large["papers"]
    # Checking and writing 900 more papers (over 5,000 more label rows) in the one
    # transaction raises the traced heap by no more than noise (holding the rows,
    # as before streaming, adds about 1 MB here) ...
    assert large["write_heap_peak_mb"] <= small["write_heap_peak_mb"] + NOISE_MB
    # ... and the process peak (torch, model, one inference chunk) stays put. The
    # whole-run heap peak is reported, not asserted: it is set by the inference
    # chunk with the longest texts, which differs between the two corpora.
    assert large["peak_rss_mb"] <= small["peak_rss_mb"] + 64
