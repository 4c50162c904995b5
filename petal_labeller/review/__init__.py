"""Curators in the loop: the review queue (queue.py) and the curators' decisions (decisions.py).

The queue is the model-labelled papers the production model is least sure of
(`petal_labeller.model.uncertainty`), with what a curator needs to decide; a
decision file is that queue with `reviewer`, `accept`, `remove` and `add` filled
in, read back and checked like an import before `store.reviews.apply_reviews`
writes it in one transaction. docs/model-card.md, "Curators in the loop", has
the measure and the file format.
"""

from __future__ import annotations

from petal_labeller.review.decisions import apply_decisions, read_decisions
from petal_labeller.review.errors import ReviewError
from petal_labeller.review.queue import (
    build_queue,
    doi_url,
    needs_review,
    record_queue,
    write_queue,
)

__all__ = [
    "ReviewError", "apply_decisions", "build_queue", "doi_url", "needs_review",
    "read_decisions", "record_queue", "write_queue",
]  # fmt: skip
