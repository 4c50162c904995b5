"""Cross-validated evaluation shared by every row of the table."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .data import folds
from .scorers import Context, Scorer

try:  # the production metrics, so this table and `petal model evaluate` agree
    from petal_labeller.model.metrics import ranking_metrics as _production_metrics

    def ranking_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return _production_metrics(scores, y)

except ImportError:  # before the model package lands
    from .metrics import ranking_metrics


@dataclass
class Result:
    name: str
    per_fold: list[dict[str, float]]
    train_s: float  # mean wall time per fold (fit + predict on ~126 test papers)

    def summary(self) -> dict[str, tuple[float, float]]:
        keys = self.per_fold[0].keys()
        return {
            k: (
                float(np.mean([f[k] for f in self.per_fold])),
                float(np.std([f[k] for f in self.per_fold])),
            )
            for k in keys
        }


def out_of_fold(
    scorer: Scorer, ctx: Context, index: np.ndarray, n_folds: int, seed: int
) -> np.ndarray:
    """Scores for every paper in `index`, each predicted by a model not trained on it."""
    scores = np.zeros((len(index), ctx.y.shape[1]), dtype=np.float32)
    for train, test in folds(len(index), n_folds, seed):
        scores[test] = scorer(ctx, index[train], index[test])
    return scores


def cross_validate(name: str, scorer: Scorer, ctx: Context, post=None, extra=None) -> Result:
    """Run `scorer` on the shared folds; `post` transforms scores, `extra` adds set metrics."""
    per_fold = []
    elapsed = []
    for train, test in folds(len(ctx.y)):
        started = time.perf_counter()
        scores = scorer(ctx, train, test)
        elapsed.append(time.perf_counter() - started)
        if post is not None:
            scores = post(scores)
        metrics = ranking_metrics(ctx.data.gold[test], scores)  # closed upwards, as everywhere
        if extra is not None:
            metrics.update(extra(ctx, train, test, scores))
        per_fold.append(metrics)
    return Result(name, per_fold, float(np.mean(elapsed)))


COLUMNS = ("P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "micro-F1", "macro-F1")


def format_row(result: Result) -> str:
    summary = result.summary()
    cells = [f"{summary[c][0]:.3f} ± {summary[c][1]:.3f}" if c in summary else "—" for c in COLUMNS]
    return f"| {result.name} | " + " | ".join(cells) + f" | {result.train_s:.1f} s |"


def header() -> str:
    names = " | ".join(COLUMNS)
    return f"| model | {names} | fit+predict / fold |\n|---|" + "---|" * (len(COLUMNS) + 1)
