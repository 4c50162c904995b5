"""Evaluation reports: JSON + Markdown + PNG plots (per-label F1, precision-recall, learning)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.model.metrics import per_label_f1
from petal_labeller.taxonomy import Taxonomy

METRIC_ORDER = (
    "P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "micro_F1", "macro_F1",
    "F1_level1", "F1_level2", "F1_level3",
)  # fmt: skip


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def metrics_table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown table, one row per model; values may be floats or (mean, std) pairs."""
    names = [m for m in METRIC_ORDER if any(m in r for r in rows.values())]
    lines = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for model, values in rows.items():
        cells = []
        for name in names:
            value = values.get(name)
            if isinstance(value, (list, tuple)):
                cells.append(f"{value[0]:.3f} ± {value[1]:.3f}")
            else:
                cells.append("" if value is None else f"{value:.3f}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_per_label_f1(predicted, gold, taxonomy: Taxonomy, path: Path) -> Path:
    plt = _pyplot()
    f1 = per_label_f1(predicted, gold)
    support = gold.sum(axis=0)
    present = np.flatnonzero(support > 0)
    order = present[np.argsort(-support[present], kind="stable")]
    fig, ax = plt.subplots(figsize=(max(8, len(order) * 0.12), 4))
    colours = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}
    ids = taxonomy.ids
    ax.bar(range(len(order)), f1[order], color=[colours[taxonomy.level(ids[c])] for c in order])
    ax.set_xlabel("label (by support, colour = level 1/2/3)")
    ax.set_ylabel("F1")
    ax.set_title("Per-label F1")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_precision_recall(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Micro-averaged precision-recall curves, one per model."""
    from sklearn.metrics import precision_recall_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (scores, gold) in curves.items():
        precision, recall, _ = precision_recall_curve(gold.ravel(), scores.ravel())
        ax.plot(recall, precision, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall (micro)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_learning_curve(history: list[dict[str, float]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (sum over labels)")
    ax.set_title("Learning curve")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(
    out_dir: Path,
    title: str,
    rows: dict[str, dict[str, Any]],
    details: dict[str, Any],
    plots: dict[str, Path],
    notes: str = "",
) -> Path:
    """report.json (all numbers) + report.md (tables and plots)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps({"title": title, "models": rows, **details}, indent=2) + "\n", encoding="utf-8"
    )
    lines = [f"# {title}", "", metrics_table(rows), ""]
    if notes:
        lines += [notes, ""]
    for caption, path in plots.items():
        lines += [f"![{caption}]({path.name})", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def write_training_report(trained: Any, taxonomy: Taxonomy, out_dir: Path) -> Path:
    """The validation split's evaluation, written beside the artefact by `petal model train`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = {
        "per-label F1": plot_per_label_f1(
            trained.val_predicted, trained.val_gold, taxonomy, out_dir / "per_label_f1.png"
        ),
        "precision-recall": plot_precision_recall(
            {"model": (trained.val_scores, trained.val_gold)}, out_dir / "precision_recall.png"
        ),
    }
    if trained.history:  # the stack trains no network: no learning curve
        plots["learning curve"] = plot_learning_curve(
            trained.history, out_dir / "learning_curve.png"
        )
    details = {"history": trained.history, "tuning": trained.tuning, "seconds": trained.seconds}
    if trained.tuning.get("combiner") == "stack":
        split = (
            f"Out-of-fold scores of all {int(trained.validation['papers'])} training papers "
            f"({trained.config.tune_folds} inner folds; combiner fit on them, so optimistic). "
        )
    else:
        split = (
            f"Validation split: {int(trained.validation['papers'])} papers "
            f"(fraction {trained.config.validation_fraction}, seed {trained.config.seed}). "
        )
    notes = split + (
        f"Scorers: {trained.model.settings['scorers']}; "
        f"global threshold {trained.tuning['thresholds']['global']}."
    )
    return write_report(
        out_dir,
        "Validation evaluation",
        {trained.config.preset: trained.validation},
        details,
        plots,
        notes,
    )
