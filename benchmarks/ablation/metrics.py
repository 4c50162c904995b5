"""Ranking and set metrics for multi-label scores (standard definitions).

Kept local until `petal_labeller.model.metrics` lands; `__main__` cross-checks
the two when both exist so the tables are comparable.
"""

from __future__ import annotations

import numpy as np


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    # Stable sort on the negated scores: ties broken by label order, deterministically.
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def precision_at_k(y: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean over papers of (relevant labels among the top k) / k."""
    top = _top_k(scores, k)
    hits = np.take_along_axis(y, top, axis=1)
    return float(hits.sum(1).mean() / k)


def ndcg_at_k(y: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Binary-gain nDCG@k; ideal DCG over min(k, #relevant); papers with no label skipped."""
    top = _top_k(scores, k)
    hits = np.take_along_axis(y, top, axis=1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(1)
    n_rel = np.minimum(y.sum(1), k).astype(int)
    idcg = np.array([discounts[:n].sum() for n in n_rel])
    keep = idcg > 0
    return float((dcg[keep] / idcg[keep]).mean())


def f1_scores(y: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """(micro F1, macro F1); macro averages over labels present in y or predicted."""
    tp = (y * predicted).sum(0)
    fp = ((1 - y) * predicted).sum(0)
    fn = (y * (1 - predicted)).sum(0)
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1e-12)
    support = (tp + fp + fn) > 0
    per_label = 2 * tp[support] / (2 * tp[support] + fp[support] + fn[support])
    return float(micro), float(per_label.mean())


def ranking_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {
        "P@1": precision_at_k(y, scores, 1),
        "P@3": precision_at_k(y, scores, 3),
        "P@5": precision_at_k(y, scores, 5),
        "nDCG@3": ndcg_at_k(y, scores, 3),
        "nDCG@5": ndcg_at_k(y, scores, 5),
    }
