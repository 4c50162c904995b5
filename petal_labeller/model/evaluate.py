"""Evaluate artefacts and recipes: one artefact on labelled papers, a fixed split, or k-fold CV.

Every experiment reports the TF-IDF + linear SVM baseline on the same papers,
as JSON + Markdown + PNG plots (see report.py). Splits come from splits.py
(scikit-learn KFold, seed 0: the folds benchmarks/ablation uses too).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.model.config import TrainConfig
from petal_labeller.model.data import LabelledPaper, load_labelled
from petal_labeller.model.scoring import gold_matrix, result_matrices, score
from petal_labeller.model.splits import CV_FOLDS, CV_SEED, kfold_indices
from petal_labeller.taxonomy import Taxonomy

log = logging.getLogger(__name__)
BASELINE = "tfidf-svm"


def model_outputs(model: Any, papers: list[LabelledPaper]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, predicted 0/1) through the served path: model.predict on the records."""
    records = [p.record for p in papers]
    started = time.monotonic()
    results = model.predict(records)
    log.info("scored %d papers in %.1f s", len(records), time.monotonic() - started)
    return result_matrices(results, model.label_ids)


def score_model(model: Any, papers: list[LabelledPaper], taxonomy: Taxonomy) -> dict[str, Any]:
    scores, predicted = model_outputs(model, papers)
    gold = gold_matrix([p.labels for p in papers], taxonomy)
    return {
        "metrics": score(scores, predicted, gold, taxonomy),
        "scores": scores,
        "predicted": predicted,
        "gold": gold,
    }


def score_baseline(
    train: list[LabelledPaper], test: list[LabelledPaper], taxonomy: Taxonomy
) -> dict[str, Any]:
    from petal_labeller.model.baseline import fit_tfidf_svm

    started = time.monotonic()
    baseline = fit_tfidf_svm(train, taxonomy)
    scores = baseline.scores([p.record for p in test])
    predicted = baseline.predicted(scores)
    gold = gold_matrix([p.labels for p in test], taxonomy)
    metrics = score(scores, predicted, gold, taxonomy)
    metrics["train_seconds"] = time.monotonic() - started
    return {"metrics": metrics, "scores": scores, "predicted": predicted, "gold": gold}


def _plots(out_dir: Path, taxonomy: Taxonomy, ours: dict, base: dict | None, history=None):
    from petal_labeller.model import report

    # Margins are not probabilities; rescale per paper so the PR curve is comparable.
    curves = {"model": (ours["scores"], ours["gold"])}
    if base is not None:
        curves[BASELINE] = (1 / (1 + np.exp(-base["scores"])), base["gold"])
    plots = {
        "per-label F1": report.plot_per_label_f1(
            ours["predicted"], ours["gold"], taxonomy, out_dir / "per_label_f1.png"
        ),
        "precision-recall": report.plot_precision_recall(curves, out_dir / "precision_recall.png"),
    }
    if history:
        plots["learning curve"] = report.plot_learning_curve(
            history, out_dir / "learning_curve.png"
        )
    return plots


def evaluate_artefact(
    model_path: str | Path,
    papers_path: str | Path,
    *,
    baseline_train: str | Path | None = None,
    report_dir: str | Path | None = None,
    precision: str | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of an artefact on labelled papers (+ the baseline fitted on `baseline_train`)."""
    from petal_labeller.model.artefact import read_card
    from petal_labeller.model.report import write_report
    from petal_labeller.runtime.load import load_model

    model = load_model(model_path, precision=precision)
    taxonomy = Taxonomy.from_records(model.labels)
    papers = load_labelled(papers_path, taxonomy)
    ours = score_model(model, papers, taxonomy)
    rows = {"model": ours["metrics"]}
    base = None
    if baseline_train is not None:
        base = score_baseline(load_labelled(baseline_train, taxonomy), papers, taxonomy)
        rows[BASELINE] = base["metrics"]
    if report_dir is not None:
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        card = read_card(model_path)
        history = read_card(model_path, "metrics.json").get("history")
        write_report(
            out,
            f"Evaluation of {Path(model_path).name} on {Path(papers_path).name}",
            rows,
            {"model_card": card, "precision": model.precision},
            _plots(out, taxonomy, ours, base, history),
        )
    return rows


def _summary(per_fold: list[dict[str, float]]) -> dict[str, list[float]]:
    keys = [k for k in per_fold[0] if all(k in fold for fold in per_fold)]
    return {
        k: [float(np.mean([f[k] for f in per_fold])), float(np.std([f[k] for f in per_fold]))]
        for k in keys
    }


def one_fold(
    papers: list[LabelledPaper], taxonomy: Taxonomy, split: tuple, config: TrainConfig, progress
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(model results, baseline results, TrainedModel) for one (train, test) split."""
    from petal_labeller.model.train import fit

    train = [papers[i] for i in split[0]]
    test = [papers[i] for i in split[1]]
    log.info("training on %d papers, testing on %d", len(train), len(test))
    trained = fit(train, taxonomy, config, progress=progress)
    ours = score_model(trained.model, test, taxonomy)
    ours["metrics"]["train_seconds"] = trained.seconds
    return ours, score_baseline(train, test, taxonomy), trained


def run_experiment(
    papers_path: str | Path,
    taxonomy_path: str | Path,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    folds: list[int] | None = None,
    n_folds: int = CV_FOLDS,
    seed: int = CV_SEED,
    progress: bool = True,
) -> dict[str, Any]:
    """Train + evaluate the recipe and the baseline on shared folds; write the report.

    `folds=[0]` is the fixed split (train 80%, test 20%); `folds=None` runs all
    k folds and reports mean and standard deviation.
    """
    from petal_labeller.model.report import write_report

    config = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = Taxonomy.load(taxonomy_path)
    papers = load_labelled(papers_path, taxonomy)
    splits = kfold_indices(len(papers), n_folds, seed)
    chosen = list(range(n_folds)) if folds is None else folds
    results = [one_fold(papers, taxonomy, splits[f], config, progress) for f in chosen]
    details = [
        {"fold": fold, "history": trained.history, "tuning": trained.tuning,
         "model": ours["metrics"], BASELINE: base["metrics"]}
        for fold, (ours, base, trained) in zip(chosen, results, strict=True)
    ]  # fmt: skip
    if len(chosen) == 1:
        rows = {config.preset: details[0]["model"], BASELINE: details[0][BASELINE]}
        title = f"Fixed split (fold {chosen[0]} of {n_folds}, seed {seed})"
    else:
        rows = {name: _summary([d[key] for d in details])
                for name, key in ((config.preset, "model"), (BASELINE, BASELINE))}  # fmt: skip
        title = f"{len(chosen)}-fold cross-validation (seed {seed}), mean ± std"
    notes = (
        f"{len(papers)} papers from {papers_path}; test papers per fold: "
        f"{[len(splits[f][1]) for f in chosen]}. Config: {config.to_dict()}"
    )
    ours, base, trained = results[0]
    plots = _plots(out, taxonomy, ours, base, trained.history)
    write_report(out, title, rows, {"folds": details, "config": config.to_dict()}, plots, notes)
    return {"rows": rows, "folds": details}
