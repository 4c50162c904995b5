"""TF-IDF + one-vs-rest linear SVM: the original team's other model family.

It is both the baseline every report compares against and, exported to numpy
(`TfidfScorer` in `petal_labeller/runtime/tfidf.py`), one of the default model's scorers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from petal_labeller.model.data import LabelledPaper, target_matrix
from petal_labeller.taxonomy import Taxonomy

#: Margin of a label no training paper had: it can never be right.
UNSEEN_MARGIN = -10.0
#: Cap on char n-gram columns (about 50,000 survive min_df 2 on the 630 shared papers).
CHAR_MAX_FEATURES = 100_000


@dataclass
class TfidfSvm:
    """The fitted scorer (numpy, as served) plus the taxonomy for label selection."""

    scorer: Any  # inference.TfidfScorer
    spec: dict[str, Any]
    arrays: dict[str, np.ndarray]
    taxonomy: Taxonomy

    def scores(self, records: list[dict[str, Any]]) -> np.ndarray:
        """SVM margins (higher = more likely)."""
        from petal_labeller.runtime.text import paper_text

        return self.scorer.margins([paper_text(r) for r in records])

    def predicted(self, scores: np.ndarray) -> np.ndarray:
        """Positive margins, at least the best label, closed upwards like the main model."""
        ids = self.taxonomy.ids
        out = np.zeros_like(scores)
        for row, margins in enumerate(scores):
            chosen = [ids[c] for c in np.flatnonzero(margins > 0)] or [ids[int(margins.argmax())]]
            columns = [ids.index(label) for label in self.taxonomy.close_upwards(chosen)]
            out[row, columns] = 1.0
        return out


def tfidf_vectorizers(char: bool) -> list[Any]:
    """Unfitted vectorizers of the recipe: word 1-2 grams, and with `char` char_wb 2-5 grams.

    One definition for the production model and the ablation that measured it.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    word = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, stop_words="english")
    if not char:
        return [word]
    return [
        word,
        TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            min_df=2,
            sublinear_tf=True,
            max_features=CHAR_MAX_FEATURES,
        ),
    ]


def fit_tfidf_svm_texts(
    texts: list[str], targets: np.ndarray, c: float = 0.5, scale: float = 2.0, char: bool = False
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Fit with scikit-learn; return (tfidf.json spec, tfidf.safetensors arrays).

    Word 1-2 grams, English stop words, sublinear tf, min_df 2 (with `char`, also
    char_wb 2-5 grams, at most 100,000, stacked beside them); one LinearSVC per
    label with balanced class weights (labels are rare: ~4.8 of 131 a paper).
    """
    from scipy.sparse import hstack
    from sklearn.svm import LinearSVC

    from petal_labeller.model.progress import Meter

    vectorizers = tfidf_vectorizers(char)
    word = vectorizers[0]
    features = hstack([v.fit_transform(texts) for v in vectorizers]).tocsr()
    n_features = features.shape[1]
    weight = np.zeros((targets.shape[1], n_features), dtype=np.float32)
    bias = np.full(targets.shape[1], UNSEEN_MARGIN, dtype=np.float32)
    meter = Meter(f"label SVMs over {n_features} TF-IDF features", targets.shape[1])
    for column in range(targets.shape[1]):
        positives = targets[:, column].sum()
        if 0 < positives < len(texts):
            svm = LinearSVC(C=c, class_weight="balanced").fit(features, targets[:, column])
            weight[column] = svm.coef_[0]
            bias[column] = svm.intercept_[0]
        meter.update(column + 1)
    word_block = {
        "terms": word.get_feature_names_out().tolist(),
        "stop_words": sorted(word.get_stop_words() or ()),
        "ngram_max": 2,
    }
    if char:
        blocks = [{"analyzer": "word", "ngram_min": 1, **word_block}]
        blocks.append(
            {
                "analyzer": "char_wb",
                "terms": vectorizers[1].get_feature_names_out().tolist(),
                "ngram_min": 2,
                "ngram_max": 5,
            }
        )
        spec: dict[str, Any] = {"blocks": blocks, "scale": scale}
    else:  # the format every earlier artefact has
        spec = {**word_block, "scale": scale}
    idf = np.concatenate([v.idf_ for v in vectorizers]).astype(np.float32)
    return spec, {"idf": idf, "weight": weight, "bias": bias}


def make_scorer(spec: dict[str, Any], arrays: dict[str, np.ndarray]):
    from petal_labeller.runtime.tfidf import TfidfScorer

    return TfidfScorer(spec, arrays["idf"], arrays["weight"], arrays["bias"])


def fit_tfidf_svm(
    papers: list[LabelledPaper], taxonomy: Taxonomy, c: float = 0.5, close: bool = False
) -> TfidfSvm:
    """The baseline on labelled papers (the curators' labels as given, unless `close`)."""
    from petal_labeller.runtime.text import paper_text

    texts = [paper_text(p.record) for p in papers]
    spec, arrays = fit_tfidf_svm_texts(texts, target_matrix(papers, taxonomy, close), c)
    return TfidfSvm(make_scorer(spec, arrays), spec, arrays, taxonomy)
