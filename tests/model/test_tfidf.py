"""The numpy TF-IDF scorer (runtime/tfidf.py) reproduces the scikit-learn model it was fit as."""

from __future__ import annotations

import json

import numpy as np

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.model.baseline import fit_tfidf_svm_texts, make_scorer
from petal_labeller.runtime.text import paper_text


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


def test_numpy_char_ngrams_match_scikit_learn_char_wb():
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    lines = (SHARED_DATA_DIR / "labelled_papers.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [paper_text(json.loads(line)) for line in lines[:80]]
    targets = np.zeros((len(texts), 2), dtype=np.float32)
    targets[::3, 0] = 1
    spec, arrays = fit_tfidf_svm_texts(texts[:60], targets[:60], char=True)
    scorer = make_scorer(spec, arrays)

    word = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, stop_words="english")
    char = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=100_000
    )
    for vectorizer in (word, char):
        vectorizer.fit(texts[:60])
    # Short words (shorter than an n-gram), tabs and runs of spaces, accents, punctuation.
    held_out = [*texts[60:], "a  I\tox, ÉTÉ   café—résumé\n\nx y", "   ", ""]
    expected = hstack([word.transform(held_out), char.transform(held_out)]).toarray()
    assert scorer.n_features == expected.shape[1] == arrays["weight"].shape[1]
    for row, text in enumerate(held_out):
        columns, values = scorer.features(text)
        dense = np.zeros(scorer.n_features)
        dense[columns] = values
        np.testing.assert_allclose(dense, expected[row], atol=1e-6)

    margins = scorer.margins(held_out)
    np.testing.assert_allclose(margins, expected @ arrays["weight"].T + arrays["bias"], atol=1e-4)
    assert (margins[:, 1] == -10.0).all()


def test_char_ngram_word_memo_gives_the_same_features_when_full(monkeypatch):
    from petal_labeller.runtime import tfidf

    lines = (SHARED_DATA_DIR / "labelled_papers.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [paper_text(json.loads(line)) for line in lines[:40]]
    targets = np.zeros((len(texts), 2), dtype=np.float32)
    targets[::3, 0] = 1
    spec, arrays = fit_tfidf_svm_texts(texts, targets, char=True)
    fresh = [make_scorer(spec, arrays).features(text) for text in texts]
    monkeypatch.setattr(tfidf, "WORD_MEMO_ENTRIES", 50)  # clears many times over 40 papers
    small = make_scorer(spec, arrays)
    for _ in range(2):  # second pass: words found in the memo
        for text, (columns, values) in zip(texts, fresh, strict=True):
            got_columns, got_values = small.features(text)
            np.testing.assert_array_equal(got_columns, columns)
            np.testing.assert_array_equal(got_values, values)
    assert all(len(a._memo) <= 50 for a in small.analyzers)
