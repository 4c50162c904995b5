"""The stack's base scorers, fit on a set of training papers (scikit-learn and numpy).

Each `fit_*` returns the scorer the runtime serves (`petal_labeller.runtime`);
`FittedTfidf` also keeps what the artefact must store, which the served scorer
does not need to hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from petal_labeller.model.config import TrainConfig
from petal_labeller.taxonomy import Taxonomy

#: Smoothing of P(label | venue) towards the label prior, in pseudo-papers.
VENUE_SMOOTHING = 2.0
#: Margins -> sigmoid(scale * margin) where a scorer's scores are wanted in [0, 1]
#: (the stack reads the raw margins; the value is stored for older blends' sake).
TFIDF_SCALE = 2.0


@dataclass(frozen=True)
class FittedTfidf:
    """TF-IDF + one linear SVM per label: tfidf.json spec, tfidf.safetensors arrays, scorer."""

    spec: dict[str, Any]
    arrays: dict[str, np.ndarray]
    scorer: Any  # runtime.tfidf.TfidfScorer


def fit_tfidf(texts: list[str], targets: np.ndarray, config: TrainConfig) -> FittedTfidf:
    from petal_labeller.model.baseline import fit_tfidf_svm_texts, make_scorer

    spec, arrays = fit_tfidf_svm_texts(
        texts, targets, config.tfidf_c, TFIDF_SCALE, char=config.tfidf_char
    )
    return FittedTfidf(spec, arrays, make_scorer(spec, arrays))


def fit_venues(records: list[dict[str, Any]], targets: np.ndarray):
    """P(label | venue) with `VENUE_SMOOTHING` pseudo-papers at the label's prior."""
    from petal_labeller.runtime.scorers import VenueScorer
    from petal_labeller.runtime.text import paper_venues

    prior = targets.mean(axis=0)
    counts: dict[str, np.ndarray] = {}
    totals: dict[str, int] = {}
    for record, row in zip(records, targets, strict=True):
        for venue in paper_venues(record):
            counts[venue] = counts.get(venue, 0) + row
            totals[venue] = totals.get(venue, 0) + 1
    venues = sorted(counts)
    table = np.array(
        [(counts[v] + VENUE_SMOOTHING * prior) / (totals[v] + VENUE_SMOOTHING) for v in venues],
        dtype=np.float32,
    ).reshape(len(venues), targets.shape[1])
    return VenueScorer(venues, table, prior.astype(np.float32))


def label_path_texts(taxonomy: Taxonomy) -> list[str]:
    """Each label's name after its ancestors' names, root first: "Move > Swim > ..."."""
    return [
        " > ".join(
            [taxonomy[a].name for a in reversed(taxonomy.ancestors(label))] + [taxonomy[label].name]
        )
        for label in taxonomy.ids
    ]
