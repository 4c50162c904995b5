"""The one way a model is scored against curator labels: the quality gate, `petal model
evaluate`, training's own validation and the model card all call `score`.

Gold labels are closed upwards (a label implies its ancestors) before scoring,
because a model's chosen labels always are: 59 of the shared papers carry a
label without its parent, and scoring those as given would count a correct
ancestor as a false positive in one place and not in another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from petal_labeller.model.metrics import all_metrics
from petal_labeller.taxonomy import Taxonomy


def gold_matrix(label_sets: Iterable[Iterable[str]], taxonomy: Taxonomy) -> np.ndarray:
    """papers x labels 0/1 in taxonomy order: each paper's curator labels and their ancestors."""
    column = {label_id: i for i, label_id in enumerate(taxonomy.ids)}
    rows = [
        sorted(column[label] for label in taxonomy.close_upwards(list(labels)))
        for labels in label_sets
    ]
    gold = np.zeros((len(rows), len(taxonomy)), dtype=np.float32)
    for row, columns in enumerate(rows):
        gold[row, columns] = 1.0
    return gold


def result_matrices(
    results: Sequence[Mapping[str, Any]], label_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, chosen 0/1) from served results `{"scores": {label: s}, "labels": [...]}`."""
    column = {label_id: i for i, label_id in enumerate(label_ids)}
    scores = np.zeros((len(results), len(label_ids)), dtype=np.float32)
    chosen = np.zeros_like(scores)
    for row, result in enumerate(results):
        for label, value in (result.get("scores") or {}).items():
            if label in column:
                scores[row, column[label]] = value
        for label in result.get("labels") or []:
            if label in column:
                chosen[row, column[label]] = 1.0
    return scores, chosen


def score(
    scores: np.ndarray,
    predicted: np.ndarray,
    gold: np.ndarray | Iterable[Iterable[str]],
    taxonomy: Taxonomy,
) -> dict[str, float]:
    """P@1/3/5, nDCG@3/5, micro/macro F1, F1 per level against closed curator labels.

    `gold` is either label-id lists (closed here) or a matrix from `gold_matrix`.
    """
    if not isinstance(gold, np.ndarray):
        gold = gold_matrix(gold, taxonomy)
    levels = [taxonomy.level(label_id) for label_id in taxonomy.ids]
    return all_metrics(scores, predicted, gold, levels)


def score_results(
    results: Sequence[Mapping[str, Any]], label_sets: Iterable[Iterable[str]], taxonomy: Taxonomy
) -> dict[str, float]:
    """`score` over served results, one per labelled paper, in the same order."""
    label_sets = list(label_sets)
    if len(results) != len(label_sets):
        raise ValueError(f"{len(results)} results for {len(label_sets)} labelled papers")
    scores, chosen = result_matrices(results, taxonomy.ids)
    return score(scores, chosen, label_sets, taxonomy)
