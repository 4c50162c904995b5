"""Which papers of the review queue go to the curators in one batch.

- `uncertain`: the queue's own order (`model.uncertainty`), the most uncertain first;
- `diverse`: the PeTaL team's 2022 practice: k-means over TF-IDF of title and
  abstract, the paper nearest each centre, so one batch covers many topics;
- `mixed`: diverse mini-batch active learning (Zhdanov 2019, arXiv:1901.05954):
  the `PREFILTER` x N most uncertain papers, clustered into N groups by k-means
  weighted by uncertainty, the paper nearest each centre.

The queue already leaves out papers with an open review task (never sent twice),
papers reviewed or curated, and papers called not biomimicry relevant.
"""

from __future__ import annotations

import psycopg2.extensions

from petal_labeller.review.errors import ReviewError
from petal_labeller.review.queue import (
    MAX_QUEUE,
    most_uncertain,
    production_version,
    queue_records,
)
from petal_labeller.taxonomy import Taxonomy

SELECTIONS = ("uncertain", "diverse", "mixed")
#: Candidates per paper picked for `mixed` (Zhdanov's beta; the benchmark's too).
PREFILTER = 4
#: Most queue papers `diverse` clusters (the most uncertain ones): k-means stays seconds.
DIVERSE_POOL = 20_000


def _pool_size(selection: str, size: int) -> int:
    if selection == "uncertain":
        return size
    if selection == "mixed":
        return PREFILTER * size
    return DIVERSE_POOL


def pick_diverse(texts: list[str], size: int, weights=None, seed: int = 0) -> list[int]:
    """Indexes of `size` texts, one nearest each k-means centre over TF-IDF (weighted by
    `weights`); a group left empty gives its slot to the next text in order."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(texts) <= size:
        return list(range(len(texts)))
    vectors = TfidfVectorizer(stop_words="english", sublinear_tf=True, ngram_range=(1, 2))
    try:
        x = vectors.fit_transform(texts)
    except ValueError:  # no word left after stop words: nothing to cluster by
        return list(range(size))
    kmeans = KMeans(n_clusters=size, n_init=3, random_state=seed)
    sample_weight = None if weights is None else np.maximum(np.asarray(weights, float), 1e-6)
    groups = kmeans.fit_predict(x, sample_weight=sample_weight)
    picked = []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        distances = np.asarray(np.square(x[members] - kmeans.cluster_centers_[group]).sum(1))
        picked.append(int(members[int(np.argmin(distances.ravel()))]))
    chosen = set(picked)
    rest = [i for i in range(len(texts)) if i not in chosen]
    return sorted(picked) + rest[: size - len(picked)]


def select_papers(
    conn: psycopg2.extensions.connection,
    taxonomy: Taxonomy,
    size: int,
    selection: str = "mixed",
    *,
    model_version: str | None = None,
    neighbours: int = 3,
    seed: int = 0,
) -> list[dict]:
    """The queue records (`review.queue`) of `size` papers to send, chosen by `selection`."""
    from petal_labeller.model.neighbours import paper_text

    if selection not in SELECTIONS:
        raise ReviewError(f"selection must be one of {', '.join(SELECTIONS)}, not {selection!r}")
    if not 0 < size <= MAX_QUEUE:
        raise ReviewError(f"papers must be 1 to {MAX_QUEUE}, not {size}")
    model_version = model_version or production_version(conn)
    pool = most_uncertain(conn, taxonomy, model_version, _pool_size(selection, size))
    if selection != "uncertain" and len(pool) > size:
        texts = [paper_text(c.title, c.abstract) for _, c in pool]
        weights = [u for u, _ in pool] if selection == "mixed" else None
        pool = [pool[i] for i in pick_diverse(texts, size, weights, seed)]
        pool.sort(key=lambda pair: (-pair[0], pair[1].paper_id))  # most uncertain first
    return queue_records(conn, taxonomy, pool, model_version, neighbours)
