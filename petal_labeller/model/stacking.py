"""The default recipe: four base scorers stacked by one pairwise logistic regression.

Bases (each fit on a set of training papers): TF-IDF word + char n-grams with
one linear SVM per label, kNN label transfer over frozen MiniLM embeddings,
cosine to each label's path name (zero-shot), and label frequency per venue. The
combiner sees, for every (paper, label) pair, each base's raw, per-label z-scored
and rank score (`runtime.combine.StackCombiner`); it is fit on the bases' inner
out-of-fold scores, so it learns how far to trust each base on papers that base
never saw. Then the bases are refit on every paper. Recipe and measurements:
docs/quality-research.md, "The recommended recipe".

scikit-learn fits everything here; the artefact holds only numpy arrays
(safetensors) and JSON, scored by petal_labeller.runtime.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.model.config import TrainConfig
from petal_labeller.model.data import LabelledPaper, target_matrix
from petal_labeller.model.metrics import micro_f1
from petal_labeller.model.scoring import gold_matrix, score
from petal_labeller.model.splits import kfold_indices
from petal_labeller.taxonomy import Taxonomy

log = logging.getLogger(__name__)

#: Inner folds' seed: differs from the evaluation folds' (0), as in the ablation.
INNER_SEED = 1
THRESHOLD_GRID = tuple(round(float(t), 3) for t in np.arange(0.05, 0.951, 0.025))
LABEL_NAME_MAX_LENGTH = 64
VENUE_SMOOTHING = 2.0
COMBINER_C = 1.0


def label_path_texts(taxonomy: Taxonomy) -> list[str]:
    """Each label's name after its ancestors' names, root first: "Move > Swim > ..."."""
    return [
        " > ".join(
            [taxonomy[a].name for a in reversed(taxonomy.ancestors(label))] + [taxonomy[label].name]
        )
        for label in taxonomy.ids
    ]


def fit_venues(records: list[dict[str, Any]], targets: np.ndarray):
    """P(label | venue) with `VENUE_SMOOTHING` pseudo-papers at the label's prior."""
    from petal_labeller.runtime.scorers import VenueScorer
    from petal_labeller.runtime.text import paper_venues

    prior = targets.mean(axis=0)
    counts: dict[str, np.ndarray] = {}
    totals: dict[str, int] = {}
    for record, row in zip(records, targets, strict=True):
        for venue in paper_venues(record):
            counts[venue] = counts.get(venue, 0) + row
            totals[venue] = totals.get(venue, 0) + 1
    venues = sorted(counts)
    table = np.array(
        [(counts[v] + VENUE_SMOOTHING * prior) / (totals[v] + VENUE_SMOOTHING) for v in venues],
        dtype=np.float32,
    ).reshape(len(venues), targets.shape[1])
    return VenueScorer(venues, table, prior.astype(np.float32))


def _fit_bases(model: Any, rows: np.ndarray, inputs: dict[str, Any], config: TrainConfig) -> None:
    """Point the model's base scorers at ones fit on `rows` only."""
    from petal_labeller.model.train import _fit_tfidf, _normalise

    names = config.scorer_names()
    targets = inputs["targets"]
    if "knn" in names:
        model.knn_bank = _normalise(inputs["pooled"][rows])
        model.knn_labels = targets[rows]
    if "tfidf" in names:
        texts = [inputs["tfidf_texts"][i] for i in rows]
        model.tfidf = _fit_tfidf(texts, targets[rows], config)
    if "venue" in names:
        model.venue = fit_venues([inputs["records"][i] for i in rows], targets[rows])


def _scores(model: Any, rows: np.ndarray, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    records = [inputs["records"][i] for i in rows]
    texts = [inputs["texts"][i] for i in rows]
    return model.components(texts, inputs["pooled"][rows], inputs["logits"][rows], records)


def out_of_fold_scores(model, inputs, config: TrainConfig) -> dict[str, np.ndarray]:
    """Every paper's base scores from bases fit on the other inner folds."""
    n = len(inputs["records"])
    oof: dict[str, np.ndarray] = {}
    for inner_train, inner_test in kfold_indices(n, config.tune_folds, INNER_SEED):
        _fit_bases(model, inner_train, inputs, config)
        for name, values in _scores(model, inner_test, inputs).items():
            oof.setdefault(name, np.zeros((n, values.shape[1]), np.float32))
            oof[name][inner_test] = values
    return oof


def fit_combiner(oof: dict[str, np.ndarray], targets: np.ndarray, levels: np.ndarray):
    """Scaler + logistic regression over every (paper, label) pair, exported as numpy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from petal_labeller.runtime.combine import StackCombiner

    bases = list(oof)
    arrays = {
        "mean": np.stack([oof[b].mean(axis=0) for b in bases]),
        "std": np.stack([oof[b].std(axis=0) + 1e-6 for b in bases]),
        "prior": targets.mean(axis=0),
        "levels": levels,
    }
    n_features = 3 * len(bases) + 4
    unscaled = {"scaler_mean": np.zeros(n_features), "scaler_scale": np.ones(n_features)}
    probe = StackCombiner.from_arrays(
        bases, {**arrays, **unscaled, "coef": np.zeros(n_features), "intercept": [0.0]}
    )
    x = probe.features(oof)
    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=COMBINER_C, max_iter=3000).fit(
        scaler.transform(x), targets.reshape(-1)
    )
    arrays.update(
        scaler_mean=scaler.mean_,
        scaler_scale=scaler.scale_,
        coef=lr.coef_[0],
        intercept=lr.intercept_,
    )
    # Through float32, exactly as stack.safetensors will hold it.
    return StackCombiner.from_arrays(bases, arrays)


def _threshold(scores: np.ndarray, gold: np.ndarray, model: Any) -> float:
    """The global threshold with the best micro-F1 (at least one label, closed upwards)."""
    from petal_labeller.model.train import _predicted_matrix

    return max(
        THRESHOLD_GRID,
        key=lambda t: micro_f1(_predicted_matrix(scores, np.full(scores.shape[1], t), model), gold),
    )


def stack_settings(config: TrainConfig) -> dict[str, Any]:
    """labeller.json for a stacked artefact."""
    return {
        "format_version": 2,
        "combiner": "stack",
        "pooling": config.pooling,
        "max_length": config.max_length,
        "include_venue": config.include_venue,
        "tfidf_include_venue": True,
        "scorers": dict.fromkeys(config.scorer_names(), 1.0),
        "knn": {"k": config.knn_k, "temperature": config.knn_temperature},
        "hierarchy": config.hierarchy,
        "min_labels": config.min_labels,
    }


def fit_stack(
    papers: list[LabelledPaper], taxonomy: Taxonomy, config: TrainConfig, progress: bool = True
):
    """Encode once, fit the combiner on inner out-of-fold base scores, refit the bases on all."""
    import torch
    from transformers import AutoTokenizer

    from petal_labeller.model.train import (
        TrainedModel,
        _predicted_matrix,
        frozen_embeddings,
        seed_everything,
    )
    from petal_labeller.runtime.model import LoadedModel
    from petal_labeller.runtime.network import LabellerNet, load_encoder
    from petal_labeller.runtime.text import CHARS_PER_TOKEN_BOUND, paper_text

    started = time.monotonic()
    seed_everything(config.seed)
    records = [p.record for p in papers]
    max_chars = config.max_length * CHARS_PER_TOKEN_BOUND
    # The curators' labels as given (not closed upwards), as in the measured recipe.
    targets = target_matrix(papers, taxonomy, close=False)
    gold = gold_matrix([p.labels for p in papers], taxonomy)  # scored as everywhere: closed
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    net = LabellerNet(
        load_encoder(config.base_model, config.pooling), len(taxonomy), config.pooling
    )
    torch.nn.init.zeros_(net.head.weight)  # no head scorer: keep its unused logits inert
    torch.nn.init.zeros_(net.head.bias)
    net.eval()
    texts = [paper_text(r, config.include_venue, max_chars) for r in records]
    pooled = frozen_embeddings(net, tokenizer, texts, config)
    encoded = time.monotonic() - started
    model = LoadedModel(
        model_dir=Path("."),
        tokenizer=tokenizer,
        net=net,
        settings=stack_settings(config),
        labels=taxonomy.to_records(),
        thresholds=np.full(len(taxonomy), 0.5, dtype=np.float32),
        batch_size=config.eval_batch_size,
    )
    if "zeroshot" in config.scorer_names():
        names = config.replace(max_length=LABEL_NAME_MAX_LENGTH)
        vectors = frozen_embeddings(net, tokenizer, label_path_texts(taxonomy), names)
        from petal_labeller.model.train import _normalise

        model.zeroshot = _normalise(vectors)
    inputs = {
        "records": records,
        "texts": texts,
        "tfidf_texts": model.tfidf_texts(records),
        "pooled": pooled,
        "logits": np.zeros((len(records), len(taxonomy)), np.float32),
        "targets": targets,
    }
    log.info(
        "stack: %d papers, %d labels, %d inner folds, bases %s (encoded in %.0f s)",
        len(papers), len(taxonomy), config.tune_folds, config.scorer_names(), encoded,
    )  # fmt: skip
    oof = out_of_fold_scores(model, inputs, config)
    levels = np.array([taxonomy.level(i) for i in taxonomy.ids], dtype=np.float32)
    model.stack = fit_combiner(oof, targets, levels)
    oof_scores = model.blend(oof)  # probabilities, capped by the hierarchy
    threshold = _threshold(oof_scores, gold, model)
    model.thresholds = np.full(len(taxonomy), threshold, dtype=np.float32)
    predicted = _predicted_matrix(oof_scores, model.thresholds, model)
    # Bases out-of-fold, combiner in-sample: a slightly optimistic estimate; the
    # honest one is `petal model evaluate --split cv`.
    validation = score(oof_scores, predicted, gold, taxonomy)
    _fit_bases(model, np.arange(len(papers)), inputs, config)
    coef = model.stack.coef.round(3).tolist()
    weights = {b: coef[3 * i : 3 * i + 3] for i, b in enumerate(model.stack.bases)}
    log.info("stack: threshold %.3f, combiner weights (raw, z, rank) %s", threshold, weights)
    return TrainedModel(
        model=model,
        config=config,
        history=[],
        validation=validation,
        val_scores=oof_scores,
        val_gold=gold,
        val_predicted=predicted,
        seconds=time.monotonic() - started,
        tuning={
            "combiner": "stack",
            "inner_folds": config.tune_folds,
            "combiner_coef": model.stack.coef.tolist(),
            "combiner_intercept": model.stack.intercept,
            "thresholds": {"global": float(threshold), "per_label": {}},
            "validation": "out-of-fold base scores of every training paper",
            "encode_seconds": round(encoded, 1),
        },
    )


def save_stack(model: Any, model_dir: Path) -> None:
    """stack.json (bases, venue names) + stack.safetensors (combiner, label names, venues)."""
    import torch
    from safetensors.torch import save_file

    from petal_labeller.model.artefact import write_json

    venue = model.venue
    venues = sorted(venue.row, key=venue.row.get) if venue is not None else []
    table = venue.table if venue is not None else np.zeros((0, len(model.labels)), np.float32)
    zeroshot = model.zeroshot
    if zeroshot is None:
        zeroshot = np.zeros((len(model.labels), model.net.head.in_features), np.float32)
    arrays = {
        **model.stack.arrays(),
        "venue_table": np.ascontiguousarray(table, dtype=np.float32),
        "label_vectors": np.ascontiguousarray(zeroshot, dtype=np.float32),
    }
    write_json(model_dir / "stack.json", {"bases": model.stack.bases, "venues": venues})
    save_file(
        {k: torch.from_numpy(v) for k, v in arrays.items()}, str(model_dir / "stack.safetensors")
    )
