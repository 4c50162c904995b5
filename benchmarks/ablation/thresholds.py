"""Turning scores into label sets: thresholds fit on training-fold scores only.

Every paper gets at least its top label, and chosen labels are closed upwards
(ancestors added), since the curators' labels include ancestors ~98% of the time.
"""

from __future__ import annotations

import numpy as np

GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


def select(scores: np.ndarray, thresholds: np.ndarray | float, parents: np.ndarray) -> np.ndarray:
    chosen = (scores >= thresholds).astype(np.float32)
    chosen[np.arange(len(scores)), scores.argmax(1)] = 1.0  # at least one label
    for _ in range(2):  # three levels: two passes add grandparents too
        for j, p in enumerate(parents):
            if p >= 0:
                chosen[:, p] = np.maximum(chosen[:, p], chosen[:, j])
    return chosen


def _micro_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    tp = (y * predicted).sum()
    return float(
        2 * tp / max(2 * tp + ((1 - y) * predicted).sum() + (y * (1 - predicted)).sum(), 1e-12)
    )


def fit_global(scores: np.ndarray, y: np.ndarray, parents: np.ndarray) -> float:
    """The one threshold that maximises micro F1 on the given (training) scores."""
    return float(max(GRID, key=lambda t: _micro_f1(y, select(scores, t, parents))))


def fit_per_label(
    scores: np.ndarray, y: np.ndarray, parents: np.ndarray, min_positives: int = 10
) -> np.ndarray:
    """Per-label thresholds maximising each label's F1; rare labels keep the global one."""
    t_global = fit_global(scores, y, parents)
    thresholds = np.full(y.shape[1], t_global)
    for j in range(y.shape[1]):
        if y[:, j].sum() >= min_positives:
            f1 = [
                2
                * (y[:, j] * (scores[:, j] >= t)).sum()
                / max(y[:, j].sum() + (scores[:, j] >= t).sum(), 1)
                for t in GRID
            ]
            thresholds[j] = GRID[int(np.argmax(f1))]
    return thresholds
