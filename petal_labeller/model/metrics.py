"""Ranking and set metrics for multi-label predictions, written out so they are checkable by hand.

Inputs are numpy arrays: `scores` (papers x labels, higher = more likely),
`gold` and `predicted` (papers x labels, 0/1). Papers without gold labels are
skipped by the ranking metrics (nothing to rank against).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RANKING_KS = (1, 3, 5)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    # Stable sort: ties are broken by label order, so results are deterministic.
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _with_gold(scores: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = gold.sum(axis=1) > 0
    return scores[keep], gold[keep]


def precision_at_k(scores: np.ndarray, gold: np.ndarray, k: int) -> float:
    """Mean over papers of (gold labels among the k best scores) / k."""
    scores, gold = _with_gold(scores, gold)
    if not len(gold):
        return 0.0
    hits = np.take_along_axis(gold, _top_k(scores, k), axis=1)
    return float(hits.sum(axis=1).mean() / k)


def ndcg_at_k(scores: np.ndarray, gold: np.ndarray, k: int) -> float:
    """Mean over papers of DCG@k / ideal DCG@k with binary relevance."""
    scores, gold = _with_gold(scores, gold)
    if not len(gold):
        return 0.0
    k = min(k, scores.shape[1])
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = np.take_along_axis(gold, _top_k(scores, k), axis=1)
    dcg = (hits * discounts).sum(axis=1)
    ideal_counts = np.minimum(gold.sum(axis=1), k).astype(int)
    ideal = np.array([discounts[:count].sum() for count in ideal_counts])
    return float((dcg / ideal).mean())


def _f1(tp: float, fp: float, fn: float) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def micro_f1(predicted: np.ndarray, gold: np.ndarray) -> float:
    tp = float((predicted * gold).sum())
    return _f1(tp, float(predicted.sum()) - tp, float(gold.sum()) - tp)


def per_label_f1(predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    tp = (predicted * gold).sum(axis=0)
    fp = predicted.sum(axis=0) - tp
    fn = gold.sum(axis=0) - tp
    return np.array([_f1(*counts) for counts in zip(tp, fp, fn, strict=True)])


def macro_f1(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Mean F1 over the labels that occur in the gold data (others have no defined recall)."""
    present = gold.sum(axis=0) > 0
    if not present.any():
        return 0.0
    return float(per_label_f1(predicted, gold)[present].mean())


def ranking_metrics(scores: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    metrics = {f"P@{k}": precision_at_k(scores, gold, k) for k in RANKING_KS}
    metrics.update({f"nDCG@{k}": ndcg_at_k(scores, gold, k) for k in (3, 5)})
    return metrics


def ranking_objective(scores: np.ndarray, gold: np.ndarray) -> float:
    """One number to tune scorer weights on: the mean of the ranking metrics."""
    return float(np.mean(list(ranking_metrics(scores, gold).values())))


def all_metrics(
    scores: np.ndarray, predicted: np.ndarray, gold: np.ndarray, levels: Sequence[int]
) -> dict[str, float]:
    """P@1/3/5, nDCG@3/5, micro/macro F1, F1 per taxonomy level, label cardinality."""
    metrics = ranking_metrics(scores, gold)
    metrics["micro_F1"] = micro_f1(predicted, gold)
    metrics["macro_F1"] = macro_f1(predicted, gold)
    levels_array = np.asarray(levels)
    for level in sorted(set(levels)):
        columns = levels_array == level
        metrics[f"F1_level{level}"] = micro_f1(predicted[:, columns], gold[:, columns])
    metrics["labels_per_paper"] = float(predicted.sum(axis=1).mean()) if len(predicted) else 0.0
    metrics["papers"] = float(len(gold))
    return metrics
