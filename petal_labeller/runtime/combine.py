"""Combining scorers into labels: the stacked combiner, the hierarchy, the label choice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petal_labeller.runtime.scorers import sigmoid


def parents_first(parent_index: np.ndarray) -> np.ndarray:
    """Columns by depth in the tree, roots first (stable): the `order` the rules below take.

    A walk stops after as many steps as there are labels, so a parent cycle ends it
    (loaders refuse cycles before this; the bound keeps any caller from looping)."""
    depth = np.zeros(len(parent_index), dtype=np.int64)
    for column in range(len(parent_index)):
        parent = parent_index[column]
        while parent >= 0 and depth[column] <= len(parent_index):
            depth[column], parent = depth[column] + 1, parent_index[parent]
    return np.argsort(depth, kind="stable")


def cap_by_parent(scores: np.ndarray, parent_index: np.ndarray, order: np.ndarray) -> np.ndarray:
    """No label scores above its parent (columns visited parents first)."""
    capped = scores.copy()
    for column in order:
        parent = parent_index[column]
        if parent >= 0:
            np.minimum(capped[:, column], capped[:, parent], out=capped[:, column])
    return capped


def lift_to_children(scores: np.ndarray, parent_index: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Every label scores at least its best child (columns visited children first).

    A paper about a child is about its parent: the curators' labels are closed upwards
    (98% of their labels have the parent on the same paper). On 996 papers this beat the
    cap on every ranking metric and both F1s (docs/quality-research.md, round three);
    no child ends above its parent either way.
    """
    lifted = scores.copy()
    for column in order[::-1]:
        parent = parent_index[column]
        if parent >= 0:
            np.maximum(lifted[:, parent], lifted[:, column], out=lifted[:, parent])
    return lifted


#: How a model makes its scores agree with the tree (labeller.json "hierarchy").
HIERARCHIES = {"lift": lift_to_children, "cap": cap_by_parent, "none": None}


def apply_hierarchy(
    scores: np.ndarray, mode: str, parent_index: np.ndarray, order: np.ndarray
) -> np.ndarray:
    """`scores` made to agree with the tree as `mode` says ("none": as they are)."""
    rule = HIERARCHIES[mode]
    return scores if rule is None else rule(scores, parent_index, order)


def choose_labels(
    scores: np.ndarray, thresholds: np.ndarray, ancestors: list[list[int]], min_labels: int = 1
) -> list[list[int]]:
    """Labels over threshold, at least `min_labels` best ones, closed upwards over the tree."""
    chosen_rows = []
    for row in scores:
        chosen = set(np.flatnonzero(row >= thresholds).tolist())
        if len(chosen) < min_labels:
            chosen.update(np.argsort(-row, kind="stable")[:min_labels].tolist())
        for column in list(chosen):
            chosen.update(ancestors[column])
        chosen_rows.append(sorted(chosen, key=lambda c: (-row[c], c)))
    return chosen_rows


RANK_CAP = 30


@dataclass
class StackCombiner:
    """A logistic regression over (paper, label) pairs, fed each base scorer's score.

    Features per pair, for each base in `bases` order: the raw score, the score
    z-scored by the label's out-of-fold mean and std, log1p of the label's rank
    within the paper (capped); then log prior and the label's level one-hot.
    Label-agnostic, so 630 papers x 131 labels train 16 weights, not 131 x 16.
    """

    bases: list[str]
    mean: np.ndarray  # (bases, labels)
    std: np.ndarray  # (bases, labels)
    prior: np.ndarray  # (labels,)
    levels: np.ndarray  # (labels,) 1, 2 or 3
    scaler_mean: np.ndarray  # (features,)
    scaler_scale: np.ndarray  # (features,)
    coef: np.ndarray  # (features,)
    intercept: float

    def features(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        n = parts[self.bases[0]].shape[0]
        columns = []
        for b, name in enumerate(self.bases):
            s = np.asarray(parts[name], dtype=np.float64)
            columns.append(s.reshape(-1))
            columns.append(((s - self.mean[b]) / self.std[b]).reshape(-1))
            ranks = np.argsort(np.argsort(-s, axis=1, kind="stable"), axis=1)
            columns.append(np.log1p(np.minimum(ranks, RANK_CAP)).reshape(-1))
        columns.append(np.tile(np.log(self.prior + 1e-3), n))
        for level in (1, 2, 3):
            columns.append(np.tile((self.levels == level).astype(np.float64), n))
        return np.stack(columns, axis=1)

    def probabilities(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        n = parts[self.bases[0]].shape[0]
        x = (self.features(parts) - self.scaler_mean) / self.scaler_scale
        return sigmoid(x @ self.coef + self.intercept).reshape(n, -1).astype(np.float32)

    ARRAYS = ("mean", "std", "prior", "levels", "scaler_mean", "scaler_scale", "coef")

    @classmethod
    def from_arrays(cls, bases: list[str], arrays: dict[str, np.ndarray]) -> StackCombiner:
        values = {name: np.asarray(arrays[name], dtype=np.float32) for name in cls.ARRAYS}
        return cls(bases=list(bases), intercept=float(arrays["intercept"][0]), **values)

    def arrays(self) -> dict[str, np.ndarray]:
        """What stack.safetensors holds (float32, as numpy)."""
        out = {
            name: np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            for name in self.ARRAYS
        }
        out["intercept"] = np.array([self.intercept], dtype=np.float32)
        return out
