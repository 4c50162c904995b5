"""Seeded splits shared by every model, so numbers from different recipes are comparable.

Cross-validation folds are scikit-learn's shuffled KFold with seed 0, the same
folds the ablation benchmark (benchmarks/ablation) uses; the "fixed split" is
fold 0 of them (train 504, test 126 papers on the shared data).
"""

from __future__ import annotations

import numpy as np

CV_SEED = 0
CV_FOLDS = 5


def holdout_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) sorted index arrays; held_out has round(n * fraction) items."""
    order = np.random.default_rng(seed).permutation(n)
    held = max(1, round(n * fraction)) if n > 1 else 0
    return np.sort(order[held:]), np.sort(order[:held])


def kfold_indices(
    n: int, k: int = CV_FOLDS, seed: int = CV_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) pairs; every item is tested exactly once; folds fixed by the seed."""
    from sklearn.model_selection import KFold

    if not 2 <= k <= n:
        raise ValueError(f"k must be between 2 and the number of papers ({n}), not {k}")
    splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.arange(n))]
