"""TF-IDF + one-vs-rest linear SVM: the original team's other model family, the bar to beat."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from petal_labeller.model.data import LabelledPaper, target_matrix
from petal_labeller.taxonomy import Taxonomy

UNSEEN_MARGIN = -100.0


@dataclass
class TfidfSvm:
    """Fitted vectoriser + classifiers; `scores` are SVM margins (higher = more likely)."""

    vectorizer: Any
    classifier: Any
    taxonomy: Taxonomy
    unseen: np.ndarray  # labels with no training paper

    def scores(self, records: list[dict[str, Any]]) -> np.ndarray:
        from petal_labeller.sagemaker.inference import paper_text

        margins = self.classifier.decision_function(
            self.vectorizer.transform([paper_text(r) for r in records])
        )
        # sklearn gives never-seen labels a constant margin of 0, which would
        # outrank every real (mostly negative) margin; they can never be right.
        margins[:, self.unseen] = UNSEEN_MARGIN
        return margins

    def predicted(self, scores: np.ndarray) -> np.ndarray:
        """Positive margins, at least the best label, closed upwards like the main model."""
        ids = self.taxonomy.ids
        out = np.zeros_like(scores)
        for row, margins in enumerate(scores):
            chosen = [ids[c] for c in np.flatnonzero(margins > 0)] or [ids[int(margins.argmax())]]
            columns = [ids.index(label) for label in self.taxonomy.close_upwards(chosen)]
            out[row, columns] = 1.0
        return out


def fit_tfidf_svm(papers: list[LabelledPaper], taxonomy: Taxonomy, c: float = 0.5) -> TfidfSvm:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    from petal_labeller.sagemaker.inference import paper_text

    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode"
    )
    features = vectorizer.fit_transform([paper_text(p.record) for p in papers])
    targets = target_matrix(papers, taxonomy, close=True)
    classifier = OneVsRestClassifier(LinearSVC(C=c))
    with warnings.catch_warnings():
        # Labels with no positive training paper get a constant scorer; that is fine.
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        warnings.filterwarnings("ignore", message="Label not .* is present")
        classifier.fit(features, targets)
    return TfidfSvm(vectorizer, classifier, taxonomy, targets.sum(axis=0) == 0)
