"""The real papers an artefact carries for the runtime's precision check (runtime/precision.py).

At load, `auto` keeps bf16 only if it moves no score of these papers by
`precision.CHECK_LIMIT`. They are the training papers whose scores bf16 moves
most, measured here on the saved model, not a spread-out handful: bf16's change
is heavy-tailed. On the production artefact (996 shared papers, native bf16)
the median paper's largest change is 0.0002, 4 papers move by 0.005 or more and
one by 0.011; 32 papers spread over length moved by at most 0.0017 and so
passed a bf16 that breaks the issue's 0.01 (docs/benchmarks.md). The papers
that move most are those near a tie (a kNN neighbour at the top-k edge, a
label's rank among the stack's rank features), a property of the model that
the serving CPU's bf16 meets too, so checking them checks the tail.

Every recipe refits on all papers, so these are papers the model trained on;
unseen papers moved about 3x more than trained-on ones in our holdout run,
which `CHECK_LIMIT` (half the bound) allows for. Only title, abstract and venue
are written, each cut to what the model reads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.model.artefact import write_json
from petal_labeller.model.data import LabelledPaper
from petal_labeller.runtime.text import CHARS_PER_TOKEN_BOUND, paper_venues
from petal_labeller.runtime.validate import (
    CHECK_PAPERS_FILE,
    MAX_CHECK_FIELD_CHARS,
    MAX_CHECK_PAPERS,
    MAX_CHECK_VENUES,
)

log = logging.getLogger(__name__)

#: Enough to hold the tail of a thousand papers, few enough to score twice at load
#: in seconds.
CHECK_PAPERS = 32
#: Training papers scored twice to find them, at most (spread over length): bounds
#: the extra training time on a large set.
MAX_SCANNED = 2000


def check_record(paper: LabelledPaper, max_chars: int) -> dict[str, Any]:
    """Title, abstract and venue only (no DOI, no labels), each cut to `max_chars`."""
    record = {
        name: paper.record[name].strip()[:max_chars]
        for name in ("title", "abstract")
        if isinstance(paper.record.get(name), str) and paper.record[name].strip()
    }
    venues = [venue.strip()[:max_chars] for venue in paper_venues(paper.record) if venue.strip()]
    if venues:
        record["venue"] = venues[:MAX_CHECK_VENUES]
    return record


def spread(papers: list[LabelledPaper], count: int) -> list[LabelledPaper]:
    """`count` papers evenly spaced over abstract length (ties by line); all if fewer."""
    order = sorted(papers, key=lambda p: (len(p.record.get("abstract") or ""), p.line))
    count = min(count, len(order))
    return [order[(2 * k + 1) * len(order) // (2 * count)] for k in range(count)]


def check_papers(
    model: Any,
    papers: list[LabelledPaper],
    count: int = CHECK_PAPERS,
    precision: str = "bf16",
    scan: int = MAX_SCANNED,
) -> list[dict[str, Any]]:
    """The `count` papers whose scores `precision` moves most against fp32 on `model`,
    among `scan` training papers spread over length.

    Where `precision` cannot run here, papers spread over length instead (logged).
    """
    from petal_labeller.runtime.precision import paper_drift

    count = min(count, MAX_CHECK_PAPERS, len(papers))
    max_chars = min(model.max_length * CHARS_PER_TOKEN_BOUND, MAX_CHECK_FIELD_CHARS)
    records = [check_record(p, max_chars) for p in spread(papers, min(scan, MAX_SCANNED))]
    started = time.monotonic()
    try:
        moved = paper_drift(model, precision, records)
    except RuntimeError as exc:  # a CPU or build without its kernels
        log.warning("%s does not run here (%s): check papers spread over length", precision, exc)
        return [check_record(p, max_chars) for p in spread(papers, count)]
    worst = np.argsort(-moved, kind="stable")[:count]
    log.info(
        "check papers: the %d of %d papers %s moves most (%.4f to %.4f), found in %.0f s",
        count, len(records), precision, moved[worst[-1]], moved[worst[0]],
        time.monotonic() - started,
    )  # fmt: skip
    return [records[i] for i in worst]


def write_check_papers(
    model_dir: Path, papers: list[LabelledPaper], scan: int = MAX_SCANNED
) -> list[dict[str, Any]]:
    """Load the saved artefact folder at fp32, pick its check papers, write them into it."""
    from petal_labeller.runtime.load import load_model

    chosen = check_papers(load_model(model_dir, precision="fp32"), papers, scan=scan)
    if chosen:
        write_json(model_dir / CHECK_PAPERS_FILE, chosen)
    return chosen
