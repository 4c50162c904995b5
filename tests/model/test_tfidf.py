"""The numpy TF-IDF scorer in inference.py reproduces the scikit-learn model it was fitted as."""

from __future__ import annotations

import json

import numpy as np

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.model.baseline import fit_tfidf_svm_texts, make_scorer
from petal_labeller.sagemaker.inference import paper_text


def test_numpy_transform_matches_scikit_learn():
    from sklearn.feature_extraction.text import TfidfVectorizer

    lines = (SHARED_DATA_DIR / "labelled_papers.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [paper_text(json.loads(line)) for line in lines[:80]]
    targets = np.zeros((len(texts), 3), dtype=np.float32)
    targets[::3, 0] = targets[1::4, 1] = 1  # label 2 never occurs: fixed low margin
    spec, arrays = fit_tfidf_svm_texts(texts[:60], targets[:60])
    scorer = make_scorer(spec, arrays)

    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, sublinear_tf=True, stop_words="english"
    ).fit(texts[:60])
    held_out = [*texts[60:], "Ünïcode café résumé", ""]
    expected = vectorizer.transform(held_out).toarray()
    for row, text in enumerate(held_out):
        columns, values = scorer.features(text)
        dense = np.zeros(len(spec["terms"]))
        dense[columns] = values
        np.testing.assert_allclose(dense, expected[row], atol=1e-6)

    margins = scorer.margins(texts[60:])
    reference = expected[:-2] @ arrays["weight"].T + arrays["bias"]
    np.testing.assert_allclose(margins, reference, atol=1e-4)
    assert (margins[:, 2] == -10.0).all()
