"""A candidate's dry relabel of a sample of the store's model-labelled papers: how many
of their label sets a promotion would change (the held-out churn only sees curated papers).

Nothing is written; the sample is stable (by paper id hash), bounded and reported as a sample.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import numpy as np

from petal_labeller.model.compare import Churn, label_churn
from petal_labeller.store.connection import connect

#: Papers relabelled at most: a few seconds of CPU inference for the production recipe.
STORE_SAMPLE = 200


def _chosen(label_sets: list[list[str]], label_ids: list[str]) -> np.ndarray:
    column = {label_id: i for i, label_id in enumerate(label_ids)}
    chosen = np.zeros((len(label_sets), len(label_ids)), dtype=np.float32)
    for row, labels in enumerate(label_sets):
        chosen[row, [column[label] for label in labels if label in column]] = 1.0
    return chosen


def store_churn(
    artefact: Path,
    production_version: str,
    sample: int = STORE_SAMPLE,
    database_url: str | None = None,
) -> Churn | None:
    """Churn of the candidate `artefact` against the stored labels of `production_version`
    on up to `sample` papers; None when that version has labelled none."""
    from petal_labeller.runtime.load import load_model
    from petal_labeller.store.promotions import labelled_sample

    with closing(connect(database_url)) as conn:
        total, papers = labelled_sample(conn, production_version, sample)
    if not papers:
        return None
    model = load_model(artefact)
    results = model.predict([record for record, _ in papers])
    label_ids = list(model.label_ids)
    new = _chosen([list(r.get("labels") or []) for r in results], label_ids)
    old = _chosen([labels for _, labels in papers], label_ids)
    return label_churn(new, old, population=total)
