"""The curator-labelled papers most similar to a paper, shown beside it in the review queue.

TF-IDF cosine over title + abstract (scikit-learn): it needs no model artefact,
so the queue works from the database alone, and shared technical words are what
a curator recognises as "a paper like this one".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHUNK = 100


def paper_text(title: str | None, abstract: str | None) -> str:
    return f"{title or ''}. {abstract or ''}"


def nearest(queries: Sequence[str], corpus: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
    """For each query, up to k (corpus index, cosine) pairs, most similar first, cosine > 0."""
    if not queries or not corpus or k <= 0:
        return [[] for _ in queries]
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        stop_words="english", sublinear_tf=True, ngram_range=(1, 2), max_features=200_000
    )
    vectorizer.fit(list(corpus) + list(queries))
    corpus_t = vectorizer.transform(corpus).T.tocsr()
    query_vectors = vectorizer.transform(queries)
    found = []
    # Dense similarity rows a chunk of queries at a time: memory stays CHUNK x corpus.
    for start in range(0, len(queries), CHUNK):
        for row in (query_vectors[start : start + CHUNK] @ corpus_t).toarray():
            order = np.argsort(-row, kind="stable")[:k]
            found.append([(int(i), round(float(row[i]), 4)) for i in order if row[i] > 0])
    return found
