"""The TF-IDF linear scorer: scikit-learn's fitted vectorizers re-implemented in numpy.

Why not scikit-learn itself (stored with skops, the well-kept pickle-free format)?
It would put scikit-learn and scipy in the serving image and a loader that must
be told which of the vectorizer's and SVM's types to trust (skops has had
advisories where that list was bypassed); the numpy form is JSON vocabularies
plus safetensors arrays, loads nothing executable, and tests/model/test_tfidf.py
holds it equal to scikit-learn's output.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from petal_labeller.runtime.errors import ArtefactError
from petal_labeller.runtime.scorers import sigmoid

#: Distinct words whose char n-gram columns are kept (about 0.2 KB each); past this
#: the memo starts again, so a hostile stream of unique words cannot grow it.
WORD_MEMO_ENTRIES = 100_000


class _Analyzer:
    """One fitted scikit-learn TfidfVectorizer's analyzer: text -> (columns, counts).

    "word": lowercase, token pattern, English stop words removed before n-grams.
    "char_wb": lowercase, each whitespace-separated word padded with one space
    and cut into n-grams that never cross a word boundary (scikit-learn's
    `_char_wb_ngrams`, short words counted once).

    A char_wb text's n-grams are the sum of its words' n-grams, and words repeat
    across papers, so each distinct word is cut into n-grams and looked up in the
    vocabulary once (`_word_columns`); a text is then a weighted sum of
    its words' column arrays in numpy, not thousands of Python dict lookups.
    """

    TOKEN = re.compile(r"(?u)\b\w\w+\b")

    def __init__(self, block: dict[str, Any], offset: int):
        self.kind = str(block.get("analyzer", "word"))
        if self.kind not in ("word", "char_wb"):
            raise ArtefactError(f"tfidf.json: unknown analyzer {self.kind!r}")
        self.vocabulary = {term: offset + i for i, term in enumerate(block["terms"])}
        self.stop_words = frozenset(block.get("stop_words") or ())
        self.ngram_min = int(block.get("ngram_min", 1))
        self.ngram_max = int(block.get("ngram_max", 2))
        self._memo: dict[str, np.ndarray] = {}

    def _word_grams(self, word: str) -> list[str]:
        padded, grams = f" {word} ", []
        for n in range(self.ngram_min, self.ngram_max + 1):
            grams.extend(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
            if len(padded) <= n:  # the whole padded word once, as scikit-learn does
                break
        return grams

    def grams(self, text: str) -> list[str]:
        text = text.lower()
        if self.kind == "char_wb":
            return [gram for word in text.split() for gram in self._word_grams(word)]
        tokens = [t for t in self.TOKEN.findall(text) if t not in self.stop_words]
        return [
            " ".join(tokens[start : start + n])
            for n in range(self.ngram_min, self.ngram_max + 1)
            for start in range(len(tokens) - n + 1)
        ]

    def _word_columns(self, word: str) -> np.ndarray:
        """The vocabulary columns of one word's char n-grams (repeats kept), memoised."""
        columns = self._memo.get(word)
        if columns is None:
            vocabulary = self.vocabulary
            found = [vocabulary.get(gram) for gram in self._word_grams(word)]
            columns = np.array([c for c in found if c is not None], dtype=np.int64)
            if len(self._memo) >= WORD_MEMO_ENTRIES:
                self._memo.clear()
            self._memo[word] = columns
        return columns

    def counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct columns, how often each occurs) of one text."""
        if self.kind == "char_wb":
            words = Counter(text.lower().split())
            parts = [self._word_columns(word) for word in words]
            if not parts:
                return np.zeros(0, np.int64), np.zeros(0)
            repeats = np.repeat(
                np.fromiter(words.values(), np.float64, len(words)), [len(p) for p in parts]
            )
            columns, inverse = np.unique(np.concatenate(parts), return_inverse=True)
            return columns, np.bincount(inverse, weights=repeats, minlength=len(columns))
        counts: dict[int, int] = {}
        vocabulary = self.vocabulary
        for gram in self.grams(text):
            column = vocabulary.get(gram)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        return columns, np.fromiter(counts.values(), dtype=np.float64, count=len(counts))


class TfidfScorer:
    """Fitted scikit-learn TfidfVectorizers (horizontally stacked) + one-vs-rest linear SVMs.

    scikit-learn cannot be assumed inside the SageMaker container, so this
    re-implements exactly the transforms the training side fitted (analyzer,
    sublinear tf, idf, L2 norm per vectorizer); tests/model/test_tfidf.py checks
    it against scikit-learn. `spec["blocks"]` lists the vectorizers; an older
    spec without it is one word vectorizer.
    """

    def __init__(self, spec: dict[str, Any], idf: np.ndarray, weight: np.ndarray, bias: np.ndarray):
        blocks = spec.get("blocks") or [{**spec, "analyzer": "word", "ngram_min": 1}]
        self.analyzers, offset = [], 0
        for block in blocks:
            self.analyzers.append(_Analyzer(block, offset))
            offset += len(block["terms"])
        self.n_features = offset
        self.scale = float(spec.get("scale", 1.0))
        # Kept feature-major: a paper's few thousand columns are then contiguous rows
        # to gather, not a strided walk over every label's row. `weight` is a view of it.
        self.weight_by_feature = np.ascontiguousarray(np.asarray(weight, np.float32).T)
        self.weight = self.weight_by_feature.T
        self.idf, self.bias = idf, bias

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, tf-idf values, each vectorizer's part L2-normalised) of one text."""
        all_columns, all_values = [], []
        for analyzer in self.analyzers:
            columns, counts = analyzer.counts(text)
            values = (np.log(counts) + 1.0) * self.idf[columns] if len(columns) else counts
            norm = np.linalg.norm(values)
            all_columns.append(columns)
            all_values.append(values / norm if norm else values)
        return np.concatenate(all_columns), np.concatenate(all_values)

    def margins(self, texts: list[str]) -> np.ndarray:
        out = np.tile(self.bias, (len(texts), 1)).astype(np.float32)
        for row, text in enumerate(texts):
            columns, values = self.features(text)
            if len(columns):
                out[row] += values.astype(np.float32) @ self.weight_by_feature[columns]
        return out

    def scores(self, texts: list[str]) -> np.ndarray:
        """SVM margins squashed into (0, 1) so they blend with probabilities."""
        return sigmoid(self.scale * self.margins(texts))
