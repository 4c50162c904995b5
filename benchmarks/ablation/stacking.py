"""Ensembles whose combination is fit on the training fold only (inner cross-validation).

For each outer fold, every base scorer is run in an inner 5-fold CV over the
training papers, giving out-of-fold base scores for them; the combiner is fit on
those, the base scorers are refit on the whole training fold and the combiner is
applied to their test-fold scores. The test fold is never seen while fitting.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .data import cache_dir, folds
from .scorers import Context, Scorer

INNER_FOLDS = 5
INNER_SEED = 1


def _base_scores(
    bases: dict[str, Scorer],
    ctx: Context,
    train: np.ndarray,
    test: np.ndarray,
    cache: dict,
    persist: bool = True,
):
    """Inner out-of-fold scores on `train` and refit scores on `test`, per base; memoised."""
    key = hashlib.sha256(train.tobytes() + b"|" + test.tobytes()).hexdigest()[:12]
    inner, outer = {}, {}
    for name, scorer in bases.items():
        if (name, key) not in cache:
            # Base names carry their hyperparameters, so the disk cache is keyed by name + fold.
            path = cache_dir() / f"stack_{name}_{key}_{ctx.data.digest}.npz"
            if persist and path.exists():
                saved = np.load(path)
                cache[(name, key)] = (saved["inner"], saved["outer"])
            else:
                oof = np.zeros((len(train), ctx.y.shape[1]), dtype=np.float32)
                for tr, te in folds(len(train), INNER_FOLDS, INNER_SEED):
                    oof[te] = scorer(ctx, train[tr], train[te])
                cache[(name, key)] = (oof, scorer(ctx, train, test))
                if persist:
                    np.savez(path, inner=cache[(name, key)][0], outer=cache[(name, key)][1])
        inner[name], outer[name] = cache[(name, key)]
    return inner, outer


def _standardise(train_scores: np.ndarray, test_scores: np.ndarray):
    """One z-score per base over all (paper, label) cells of the training scores.

    Puts margins and probabilities on one scale without reordering the labels within a
    paper (a per-label z-score would, and ranks collapse)."""
    mean, std = train_scores.mean(), train_scores.std() + 1e-6
    return (train_scores - mean) / std, (test_scores - mean) / std


def _hierarchy_views(z: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(parent's score, best child's score) per label; a root is its own parent, a leaf its own
    child."""
    parent_view = np.where(parents >= 0, z[:, np.maximum(parents, 0)], z)
    child_view = z.copy()
    has_child = np.zeros(len(parents), dtype=bool)
    best = np.full_like(z, -np.inf)
    for j, p in enumerate(parents):
        if p >= 0:
            best[:, p] = np.maximum(best[:, p], z[:, j])
            has_child[p] = True
    child_view[:, has_child] = best[:, has_child]
    return parent_view, child_view


def pair_features(
    scores: dict[str, np.ndarray],
    stats: dict[str, tuple],
    prior: np.ndarray,
    levels: np.ndarray,
    parents: np.ndarray | None = None,
):
    """One row per (paper, label): each base's raw, z-scored and rank score (and, with `parents`,
    its parent's and best child's z-score), log prior, level one-hot."""
    n = next(iter(scores.values())).shape[0]
    columns = []
    for name, s in scores.items():
        mean, std = stats[name]
        z = (s - mean) / std
        columns.append(s.reshape(-1))
        columns.append(z.reshape(-1))
        if parents is not None:
            for view in _hierarchy_views(s, parents):
                columns.append(view.reshape(-1))
        # rank of this label within the paper under this base (0 = top), capped
        ranks = np.argsort(np.argsort(-s, axis=1, kind="stable"), axis=1)
        columns.append(np.log1p(np.minimum(ranks, 30)).reshape(-1))
    columns.append(np.tile(np.log(prior + 1e-3), n))
    for level in (1, 2, 3):
        columns.append(np.tile((levels == level).astype(np.float32), n))
    return np.stack(columns, axis=1)


def stacked(
    bases: dict[str, Scorer],
    combiner: str = "logistic",
    cache: dict | None = None,
    levels=None,
    parents=None,
    persist: bool = True,
) -> Scorer:
    """A scorer that stacks `bases` with a label-agnostic pairwise combiner fit by inner CV."""
    cache = {} if cache is None else cache

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        inner, outer = _base_scores(bases, ctx, train, test, cache, persist)
        stats = {
            n: (inner[n].mean(0, keepdims=True), inner[n].std(0, keepdims=True) + 1e-6)
            for n in bases
        }
        prior = ctx.y[train].mean(0)
        x_train = pair_features(inner, stats, prior, levels, parents)
        x_test = pair_features(outer, stats, prior, levels, parents)
        y_train = ctx.y[train].reshape(-1)
        if combiner == "logistic":
            from sklearn.linear_model import LogisticRegression
            from sklearn.preprocessing import StandardScaler

            scaler = StandardScaler().fit(x_train)
            model = LogisticRegression(C=1.0, max_iter=3000).fit(scaler.transform(x_train), y_train)
            p = model.predict_proba(scaler.transform(x_test))[:, 1]
            p_train = model.predict_proba(scaler.transform(x_train))[:, 1]
        elif combiner == "gbm":
            from sklearn.ensemble import HistGradientBoostingClassifier

            model = HistGradientBoostingClassifier(
                max_iter=300,
                learning_rate=0.05,
                max_leaf_nodes=15,
                min_samples_leaf=40,
                random_state=0,
            ).fit(x_train, y_train)
            p = model.predict_proba(x_test)[:, 1]
            p_train = model.predict_proba(x_train)[:, 1]
        else:
            raise ValueError(combiner)
        # Combiner outputs on the training papers' inner out-of-fold features: thresholds fit here.
        fit_predict.train_scores = p_train.reshape(len(train), -1)
        return p.reshape(len(test), -1)

    return fit_predict


def weighted_sum(
    bases: dict[str, Scorer], cache: dict | None = None, grid=(0.0, 0.25, 0.5, 1.0, 2.0)
) -> Scorer:
    """Globally z-scored base scores summed, weights grid-searched on inner OOF (P@1+P@3+P@5)."""
    import itertools

    from .metrics import precision_at_k

    cache = {} if cache is None else cache

    def fit_predict(ctx: Context, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        inner, outer = _base_scores(bases, ctx, train, test, cache, True)
        names = list(bases)
        z = {n: _standardise(inner[n], outer[n]) for n in names}
        y_train = ctx.y[train]
        best, best_w = -1.0, None
        for w in itertools.product(grid, repeat=len(names) - 1):
            w = (1.0, *w)
            s = sum(wi * z[n][0] for wi, n in zip(w, names, strict=True))
            score = sum(precision_at_k(y_train, s, k) for k in (1, 3, 5))
            if score > best:
                best, best_w = score, w
        fit_predict.chosen.append(best_w)
        return sum(wi * z[n][1] for wi, n in zip(best_w, names, strict=True))

    fit_predict.chosen = []
    return fit_predict
