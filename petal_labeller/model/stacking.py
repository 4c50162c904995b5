"""The production recipe: four base scorers stacked by one pairwise logistic regression.

Bases (bases.py, each fit on a set of training papers): TF-IDF word + char n-grams
with one linear SVM per label, kNN label transfer over frozen MiniLM embeddings,
cosine to each label's path name (zero-shot), and label frequency per venue. The
combiner sees, for every (paper, label) pair, each base's raw, per-label z-scored
and rank score (`runtime.combine.StackCombiner`); it is fit on the bases' inner
out-of-fold scores, so it learns how far to trust each base on papers that base
never saw. Then the bases are refit on every paper. Recipe and measurements:
docs/quality-research.md, "The recommended recipe".

scikit-learn fits everything here; the artefact holds only numpy arrays
(safetensors) and JSON, served by petal_labeller.runtime.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.model.bases import fit_tfidf, fit_venues, label_path_texts
from petal_labeller.model.config import TrainConfig
from petal_labeller.model.data import LabelledPaper, target_matrix
from petal_labeller.model.encoder import (
    encoder_texts,
    frozen_embeddings,
    frozen_network,
    normalise,
    seed_everything,
)
from petal_labeller.model.progress import phase
from petal_labeller.model.recipes import TrainedModel, load_saved
from petal_labeller.model.scoring import gold_matrix, score
from petal_labeller.model.selection import best_global_threshold, predicted_matrix
from petal_labeller.model.splits import kfold_indices
from petal_labeller.taxonomy import Taxonomy

log = logging.getLogger(__name__)

#: Inner folds' seed: differs from the evaluation folds' (0), as in the ablation.
INNER_SEED = 1
LABEL_NAME_MAX_LENGTH = 64


@dataclass(frozen=True)
class StackInputs:
    """The training papers as every base reads them, computed once per fit."""

    records: list[dict[str, Any]]
    texts: list[str]
    tfidf_texts: list[str]
    pooled: np.ndarray
    targets: np.ndarray  # the curators' labels as given (the measured recipe)

    def subset(self, rows: np.ndarray) -> StackInputs:
        """The inputs of papers `rows` only: refits on subsets never re-encode."""
        return StackInputs(
            records=[self.records[i] for i in rows],
            texts=[self.texts[i] for i in rows],
            tfidf_texts=[self.tfidf_texts[i] for i in rows],
            pooled=self.pooled[rows],
            targets=self.targets[rows],
        )


def stack_settings(config: TrainConfig) -> dict[str, Any]:
    """labeller.json of a stacked artefact."""
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


def prepare(
    papers: list[LabelledPaper],
    taxonomy: Taxonomy,
    config: TrainConfig,
    pooled: np.ndarray | None = None,
):
    """(an untrained LoadedModel with the stack's settings, StackInputs): one encoder pass,
    none for the papers when their frozen `pooled` vectors are given (benchmarks' cache)."""
    from petal_labeller.runtime.model import LoadedModel

    seed_everything(config.seed)
    records = [p.record for p in papers]
    tokenizer, net = frozen_network(config, len(taxonomy))
    texts = encoder_texts(records, config)
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
        model.zeroshot = normalise(
            frozen_embeddings(net, tokenizer, label_path_texts(taxonomy), names)
        )
    inputs = StackInputs(
        records=records,
        texts=texts,
        tfidf_texts=model.tfidf_texts(records),
        pooled=frozen_embeddings(net, tokenizer, texts, config) if pooled is None else pooled,
        targets=target_matrix(papers, taxonomy, close=False),
    )
    return model, inputs


def fit_bases(model: Any, rows: np.ndarray, inputs: StackInputs, config: TrainConfig):
    """Point the model's base scorers at ones fit on `rows` only; the FittedTfidf or None."""
    names, targets = config.scorer_names(), inputs.targets
    fitted = None
    if "knn" in names:
        model.knn_bank = normalise(inputs.pooled[rows])
        model.knn_labels = targets[rows]
    if "tfidf" in names:
        fitted = fit_tfidf([inputs.tfidf_texts[i] for i in rows], targets[rows], config)
        model.tfidf = fitted.scorer
    if "venue" in names:
        model.venue = fit_venues([inputs.records[i] for i in rows], targets[rows])
    return fitted


def out_of_fold_scores(model, inputs: StackInputs, config: TrainConfig) -> dict[str, np.ndarray]:
    """Every paper's base scores from bases fit on the other inner folds."""
    n = len(inputs.records)
    oof: dict[str, np.ndarray] = {}
    folds = kfold_indices(n, config.tune_folds, INNER_SEED)
    for fold, (inner_train, inner_test) in enumerate(folds, start=1):
        phase("inner fold %d/%d: bases on %d papers", fold, len(folds), len(inner_train))
        fit_bases(model, inner_train, inputs, config)
        records = [inputs.records[i] for i in inner_test]
        texts = [inputs.texts[i] for i in inner_test]
        pooled = inputs.pooled[inner_test]
        logits = np.zeros((len(inner_test), len(model.labels)), np.float32)  # no head
        for name, values in model.components(texts, pooled, logits, records).items():
            oof.setdefault(name, np.zeros((n, values.shape[1]), np.float32))
            oof[name][inner_test] = values
    return oof


def fit_combiner(oof: dict[str, np.ndarray], targets: np.ndarray, levels: np.ndarray, c: float):
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
    lr = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x), targets.reshape(-1))
    arrays.update(
        scaler_mean=scaler.mean_,
        scaler_scale=scaler.scale_,
        coef=lr.coef_[0],
        intercept=lr.intercept_,
    )
    # Through float32, exactly as stack.safetensors will hold it.
    return StackCombiner.from_arrays(bases, arrays)


def _tuning(model: Any, config: TrainConfig, threshold: float) -> dict[str, Any]:
    return {
        "combiner": "stack",
        "inner_folds": config.tune_folds,
        "combiner_coef": model.stack.coef.tolist(),
        "combiner_intercept": model.stack.intercept,
        "thresholds": {"global": float(threshold), "per_label": {}},
        "validation": "out-of-fold base scores of every training paper",
    }


def fit_prepared(
    model: Any,
    inputs: StackInputs,
    labels: list[list[str]],
    taxonomy: Taxonomy,
    config: TrainConfig,
    started: float | None = None,
) -> TrainedModel:
    """The stack fit on prepared inputs (no encoder pass): combiner on the bases' inner
    out-of-fold scores, threshold, then the bases refit on every paper. `labels`: the
    curators' labels of the same papers, for the gold (closed) matrix."""
    started = time.monotonic() if started is None else started
    oof = out_of_fold_scores(model, inputs, config)
    levels = np.array([taxonomy.level(i) for i in taxonomy.ids], dtype=np.float32)
    phase("fitting the combiner on the out-of-fold scores")
    model.stack = fit_combiner(oof, inputs.targets, levels, config.combiner_c)
    gold = gold_matrix(labels, taxonomy)
    oof_scores = model.blend(oof)  # probabilities, capped by the hierarchy
    threshold = best_global_threshold(oof_scores, gold, model)
    model.thresholds = np.full(len(taxonomy), threshold, dtype=np.float32)
    predicted = predicted_matrix(oof_scores, model.thresholds, model)
    # Bases out-of-fold, combiner in-sample: a slightly optimistic estimate; the
    # honest one is `petal model evaluate --split cv`.
    validation = score(oof_scores, predicted, gold, taxonomy)
    phase("refitting the bases on all %d papers", len(labels))
    tfidf = fit_bases(model, np.arange(len(labels)), inputs, config)
    log.info("stack: threshold %.3f, combiner weights %s", threshold, model.stack.coef.round(3))
    return TrainedModel(
        model=model,
        config=config,
        validation=validation,
        val_scores=oof_scores,
        val_gold=gold,
        val_predicted=predicted,
        seconds=time.monotonic() - started,
        tuning=_tuning(model, config, threshold),
        parts={"tfidf": tfidf},
    )


def predict_prepared(model: Any, inputs: StackInputs) -> tuple[np.ndarray, np.ndarray]:
    """(scores, chosen labels) as `model.predict` gives them, from prepared inputs."""
    logits = np.zeros((len(inputs.records), len(model.labels)), np.float32)  # no head
    parts = model.components(inputs.texts, inputs.pooled, logits, inputs.records)
    scores = model.blend(parts)
    return scores, predicted_matrix(scores, model.thresholds, model)


class StackRecipe:
    """The `stack` entry of recipes.RECIPES: fit, save, load."""

    def fit(
        self,
        papers: list[LabelledPaper],
        taxonomy: Taxonomy,
        config: TrainConfig,
        progress: bool = True,
    ) -> TrainedModel:
        """Encode once, fit the combiner on inner out-of-fold base scores, refit bases on all."""
        started = time.monotonic()
        phase("preset %s, %d papers, %d labels", config.preset, len(papers), len(taxonomy))
        model, inputs = prepare(papers, taxonomy, config)
        log.info(
            "stack: %d papers, %d labels, %d inner folds, bases %s (encoded in %.0f s)",
            len(papers), len(taxonomy), config.tune_folds, config.scorer_names(),
            time.monotonic() - started,
        )  # fmt: skip
        return fit_prepared(model, inputs, [p.labels for p in papers], taxonomy, config, started)

    def save(self, trained: TrainedModel, model_dir: Path) -> None:
        """knn, tfidf and stack files and labeller.json (train.save_model writes the rest)."""
        from petal_labeller.model.artefact import write_json
        from petal_labeller.model.weights import save_arrays, save_knn, save_tfidf

        model = trained.model
        if model.settings["scorers"].get("knn"):
            save_knn(model, model_dir)
        if model.settings["scorers"].get("tfidf"):
            save_tfidf(trained.parts["tfidf"], model_dir)
        venue = model.venue
        venues = sorted(venue.row, key=venue.row.get) if venue is not None else []
        table = venue.table if venue is not None else np.zeros((0, len(model.labels)), np.float32)
        zeroshot = model.zeroshot
        if zeroshot is None:
            zeroshot = np.zeros((len(model.labels), model.net.head.in_features), np.float32)
        arrays = {
            **model.stack.arrays(),
            "venue_table": np.asarray(table, dtype=np.float32),
            "label_vectors": np.asarray(zeroshot, dtype=np.float32),
        }
        write_json(model_dir / "stack.json", {"bases": model.stack.bases, "venues": venues})
        save_arrays(model_dir / "stack.safetensors", arrays)
        write_json(model_dir / "labeller.json", model.settings)

    def load(self, model_dir: Path, precision: str | None = None) -> Any:
        return load_saved(model_dir, precision)


STACK = StackRecipe()
