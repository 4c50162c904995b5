"""Which labels a paper gets: scores over thresholds, at least the top label, closed upwards.

Thresholds are tuned here on training papers' out-of-fold scores against the
curators' labels closed upwards (`scoring.gold_matrix`), the same gold every
report scores against.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from petal_labeller.model.metrics import micro_f1

#: Global thresholds tried (0.05-0.95, step 0.025).
THRESHOLD_GRID = tuple(round(float(t), 3) for t in np.arange(0.05, 0.951, 0.025))


def predicted_matrix(scores: np.ndarray, thresholds: np.ndarray, model: Any) -> np.ndarray:
    """0/1 chosen labels, exactly as the runtime chooses them (min labels, ancestors)."""
    from petal_labeller.runtime.combine import choose_labels

    chosen = choose_labels(scores, thresholds, model.ancestors, int(model.settings["min_labels"]))
    predicted = np.zeros_like(scores)
    for row, columns in enumerate(chosen):
        predicted[row, columns] = 1.0
    return predicted


def best_global_threshold(
    scores: np.ndarray, gold: np.ndarray, model: Any, grid: tuple[float, ...] = THRESHOLD_GRID
) -> float:
    """The threshold with the best micro-F1 of the chosen (closed) labels against `gold`."""
    return max(
        grid,
        key=lambda t: micro_f1(predicted_matrix(scores, np.full(scores.shape[1], t), model), gold),
    )
