"""Base scorers: each maps (train papers, test papers) to a (n_test, n_labels) score matrix.

A scorer is `fit_predict(ctx, train_idx, test_idx) -> np.ndarray`; higher means
more likely. They only ever see the training rows' labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from petal_labeller.runtime.combine import cap_by_parent as runtime_cap
from petal_labeller.runtime.combine import lift_to_children, parents_first

from .data import Dataset
from .embeddings import paper_text

Scorer = Callable[["Context", np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Context:
    """The dataset plus precomputed, label-free inputs (embeddings, texts)."""

    data: Dataset
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    label_vectors: np.ndarray | None = None  # label-name embeddings (n_labels, dim)
    #: Label-name embeddings by another encoder (its paper embeddings' key), for zero-shot.
    other_label_vectors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def y(self) -> np.ndarray:
        return self.data.y


def prior(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Label frequency on the training papers: the score every model must beat."""
    return np.tile(ctx.y[train].mean(0), (len(test), 1))


def svm_margins(
    texts: list[str],
    train: np.ndarray,
    y_train: np.ndarray,
    test: np.ndarray,
    C: float = 0.5,
    char: bool = True,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """TF-IDF (word 1-2 grams, optionally char_wb 2-5 grams) fit on the `train` texts, then
    one LinearSVC per label; the `test` texts' margins (-10 where a label is constant)."""
    from scipy.sparse import hstack
    from sklearn.svm import LinearSVC

    from petal_labeller.model.baseline import tfidf_vectorizers

    vectorizers = tfidf_vectorizers(char)
    x_train = hstack([v.fit_transform([texts[i] for i in train]) for v in vectorizers]).tocsr()
    x_test = hstack([v.transform([texts[i] for i in test]) for v in vectorizers]).tocsr()
    scores = np.full((len(test), y_train.shape[1]), -10.0, dtype=np.float32)
    for j in range(y_train.shape[1]):
        if 0 < y_train[:, j].sum() < len(train):
            svm = LinearSVC(C=C, class_weight="balanced")
            svm.fit(x_train, y_train[:, j], sample_weight=sample_weight)
            scores[:, j] = svm.decision_function(x_test)
    return scores


def tfidf_svm(C: float = 0.5, char: bool = True, variant: str = "title_abstract_venue") -> Scorer:
    """TF-IDF + one-vs-rest LinearSVC margins (`svm_margins`) on `variant`'s text."""

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        texts = [paper_text(p, variant) for p in ctx.data.papers]
        return svm_margins(texts, train, ctx.y[train], test, C, char)

    return fit_predict


def knn(k: int = 20, temperature: float = 0.05, embedding: str = "title_abstract") -> Scorer:
    """Nearest-neighbour label transfer: softmax(cos / T)-weighted vote of the k nearest papers
    (the runtime's `knn_scores`, the one production uses)."""

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        from petal_labeller.runtime.scorers import knn_scores

        x = ctx.embeddings[embedding]  # unit rows (embeddings.encode), as the runtime's bank
        return knn_scores(x[test], x[train], ctx.y[train], k, temperature)

    return fit_predict


def logreg(C: float = 4.0, embedding: str = "title_abstract") -> Scorer:
    """One-vs-rest logistic regression on frozen embeddings (a linear head, no fine-tuning)."""

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression

        x = ctx.embeddings[embedding]
        y_train = ctx.y[train]
        scores = np.tile(y_train.mean(0), (len(test), 1)).astype(np.float32)
        for j in range(y_train.shape[1]):
            if 0 < y_train[:, j].sum() < len(train):
                model = LogisticRegression(C=C, max_iter=2000).fit(x[train], y_train[:, j])
                scores[:, j] = model.predict_proba(x[test])[:, 1]
        return scores

    return fit_predict


def zero_shot(embedding: str = "title_abstract") -> Scorer:
    """Cosine similarity between a paper and each label's name (with its ancestors' names),
    both by the encoder of `embedding` (MiniLM unless it names another encoder's vectors)."""

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        labels = ctx.other_label_vectors.get(embedding, ctx.label_vectors)
        return ctx.embeddings[embedding][test] @ labels.T

    return fit_predict


def prototype(with_names: bool = False, embedding: str = "title_abstract") -> Scorer:
    """Cosine to each label's prototype: the mean embedding of the training papers that carry
    it (closed upwards, so a parent's prototype includes its children's papers), plus its
    path name's embedding with `with_names` (round three, lever 2)."""

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        x = ctx.embeddings[embedding]
        names = ctx.label_vectors if with_names else None
        return x[test] @ label_prototypes(x[train], ctx.data.gold[train], names).T

    return fit_predict


def label_prototypes(x: np.ndarray, gold: np.ndarray, names: np.ndarray | None) -> np.ndarray:
    """Each label's unit prototype: the mean of its papers' vectors (plus its name's)."""
    centre = (gold.T @ x) / np.maximum(gold.sum(0)[:, None], 1)
    if names is not None:
        centre = centre + names
    return centre / np.maximum(np.linalg.norm(centre, axis=1, keepdims=True), 1e-9)


def venue(smoothing: float = 2.0) -> Scorer:
    """P(label | venue) from training co-occurrence, shrunk to the prior; mean over venues."""

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        y_train = ctx.y[train]
        base = y_train.mean(0)
        counts: dict[str, np.ndarray] = {}
        totals: dict[str, int] = {}
        for row, i in enumerate(train):
            for v in ctx.data.venues(i):
                counts[v] = counts.get(v, 0) + y_train[row]
                totals[v] = totals.get(v, 0) + 1
        scores = np.tile(base, (len(test), 1))
        for row, i in enumerate(test):
            known = [v for v in ctx.data.venues(i) if v in counts]
            if known:
                scores[row] = np.mean(
                    [(counts[v] + smoothing * base) / (totals[v] + smoothing) for v in known],
                    axis=0,
                )
        return scores

    return fit_predict


def propagate_max(scores: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Parent score = max(parent, children): the runtime's `hierarchy: lift`, the same code."""
    return lift_to_children(scores, parents, parents_first(parents))


def parent_index(data: Dataset) -> np.ndarray:
    column = {label: j for j, label in enumerate(data.labels)}
    return np.array([column.get(data.taxonomy.parent(label) or "", -1) for label in data.labels])


def knn_tfidf(
    k: int = 20, temperature: float = 0.05, variant: str = "title_abstract_venue"
) -> Scorer:
    """kNN label transfer over TF-IDF (word 1-2 gram) cosine instead of sentence embeddings."""

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        from sklearn.feature_extraction.text import TfidfVectorizer

        from petal_labeller.runtime.scorers import knn_scores

        texts = [paper_text(p, variant) for p in ctx.data.papers]
        vectorizer = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, sublinear_tf=True, stop_words="english"
        )
        x_train = vectorizer.fit_transform([texts[i] for i in train])
        x_test = vectorizer.transform([texts[i] for i in test])
        # TF-IDF rows are unit-length, like the runtime's embedding bank; the bank stays sparse.
        return knn_scores(x_test.toarray(), x_train, ctx.y[train], k, temperature)

    return fit_predict


def ridge(alpha: float = 1.0, embedding: str = "title_abstract") -> Scorer:
    """Multi-output ridge regression from embeddings to the 0/1 label matrix (one solve)."""

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        from sklearn.linear_model import Ridge

        x = ctx.embeddings[embedding]
        return Ridge(alpha=alpha).fit(x[train], ctx.y[train]).predict(x[test])

    return fit_predict


def tfidf_embedding_svm(
    C: float = 0.5, weight: float = 1.0, embedding: str = "title_abstract"
) -> Scorer:
    """LinearSVC on [TF-IDF word+char | weight * sentence embedding]: lexical + semantic."""

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        from scipy.sparse import csr_matrix, hstack
        from sklearn.svm import LinearSVC

        from petal_labeller.model.baseline import tfidf_vectorizers

        texts = [paper_text(p, "title_abstract_venue") for p in ctx.data.papers]
        vectorizers = tfidf_vectorizers(char=True)
        x = ctx.embeddings[embedding] * weight
        x_train = hstack(
            [v.fit_transform([texts[i] for i in train]) for v in vectorizers]
            + [csr_matrix(x[train])]
        ).tocsr()
        x_test = hstack(
            [v.transform([texts[i] for i in test]) for v in vectorizers] + [csr_matrix(x[test])]
        ).tocsr()
        y_train = ctx.y[train]
        scores = np.full((len(test), y_train.shape[1]), -10.0, dtype=np.float32)
        for j in range(y_train.shape[1]):
            if 0 < y_train[:, j].sum() < len(train):
                svm = LinearSVC(C=C, class_weight="balanced").fit(x_train, y_train[:, j])
                scores[:, j] = svm.decision_function(x_test)
        return scores

    return fit_predict


def cap_by_parent(scores: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Child score = min(child, parent): the runtime's `hierarchy: cap`, the same code."""
    return runtime_cap(scores, parents, parents_first(parents))
