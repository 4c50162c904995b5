"""Learning curve: 5-fold CV of the default recipe and the TF-IDF + SVM baseline when trained
on 25/50/75/100% of each fold's training papers (test folds always whole).

    nice python -m benchmarks.learning_curve [--fractions 1,0.25,0.5,0.75] [--folds 0,1,2,3,4]

Each (fraction, fold) result is appended to `benchmarks/results/learning_curve.json` as soon
as it is measured, and a rerun skips what is there, so a long run can be stopped and
resumed. The table and `docs/img/learning-curve.png` are written from that file. The subset
for a fraction is a seeded permutation of the fold's training papers (seed = fold), nested:
the 25% papers are among the 50% ones, and so on.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "learning_curve.json"
PLOT = ROOT / "docs" / "img" / "learning-curve.png"
METRICS = ("P@1", "P@3", "P@5", "nDCG@3", "micro_F1")
MODELS = ("default", "tfidf-svm")


def _load_results() -> list[dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def _save_results(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1))


def subset(train_rows: np.ndarray, fraction: float, fold: int) -> np.ndarray:
    """The first `fraction` of a fold-seeded permutation: nested across fractions."""
    order = np.random.default_rng(fold).permutation(train_rows)
    return np.sort(order[: max(2, round(fraction * len(order)))])


def measure(fractions: list[float], folds: list[int], papers_path: Path, taxonomy_path: Path):
    import torch

    from petal_labeller.model.config import preset
    from petal_labeller.model.data import load_labelled
    from petal_labeller.model.evaluate import score_baseline, score_model
    from petal_labeller.model.splits import kfold_indices
    from petal_labeller.model.train import fit
    from petal_labeller.taxonomy import Taxonomy

    torch.set_num_threads(1)
    taxonomy = Taxonomy.load(taxonomy_path)
    papers = load_labelled(papers_path, taxonomy)
    splits = kfold_indices(len(papers), 5, 0)
    rows = _load_results()
    done = {(r["fraction"], r["fold"]) for r in rows}
    for fraction in fractions:
        for fold in folds:
            if (fraction, fold) in done:
                continue
            train_rows, test_rows = splits[fold]
            chosen = subset(train_rows, fraction, fold)
            train = [papers[i] for i in chosen]
            test = [papers[i] for i in test_rows]
            started = time.monotonic()
            trained = fit(train, taxonomy, preset("default"), progress=False)
            ours = score_model(trained.model, test, taxonomy)["metrics"]
            base = score_baseline(train, test, taxonomy)["metrics"]
            row = {
                "fraction": fraction,
                "fold": fold,
                "train_papers": len(train),
                "test_papers": len(test),
                "seconds": round(time.monotonic() - started, 1),
                "default": ours,
                "tfidf-svm": base,
            }
            print(json.dumps({k: row[k] for k in ("fraction", "fold", "train_papers")}
                             | {m: round(ours[m], 3) for m in METRICS}), flush=True)  # fmt: skip
            rows.append(row)
            _save_results(rows)
    return rows


def summary(rows: list[dict]) -> dict[tuple[str, float], dict[str, tuple[float, float, int]]]:
    """(model, fraction) -> metric -> (mean, std, folds)."""
    table: dict = {}
    for model in MODELS:
        for fraction in sorted({r["fraction"] for r in rows}):
            picked = [r for r in rows if r["fraction"] == fraction]
            table[model, fraction] = {
                m: (
                    float(np.mean([r[model][m] for r in picked])),
                    float(np.std([r[model][m] for r in picked])),
                    len(picked),
                )
                for m in METRICS
            }
    return table


def markdown(rows: list[dict]) -> str:
    table = summary(rows)
    sizes = {r["fraction"]: r["train_papers"] for r in rows}
    lines = [
        "| model | training papers (of each fold's) | folds | " + " | ".join(METRICS) + " |",
        "|---" * (len(METRICS) + 3) + "|",
    ]
    for (model, fraction), values in table.items():
        cells = [f"{mean:.3f} ± {std:.3f}" for mean, std, _ in values.values()]
        folds = next(iter(values.values()))[2]
        head = f"| {model} | {sizes[fraction]} ({fraction:.0%}) | {folds} | "
        lines.append(head + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path = PLOT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(rows)
    fractions = sorted({r["fraction"] for r in rows})
    sizes = [np.mean([r["train_papers"] for r in rows if r["fraction"] == f]) for f in fractions]
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, style in zip(MODELS, ("-", "--"), strict=True):
        for metric, colour in zip(("P@1", "P@3", "nDCG@3"), ("C0", "C1", "C2"), strict=True):
            means = np.array([table[model, f][metric][0] for f in fractions])
            stds = np.array([table[model, f][metric][1] for f in fractions])
            ax.errorbar(sizes, means, yerr=stds, fmt=style + "o", color=colour, capsize=3,
                        label=f"{model} {metric}")  # fmt: skip
    ax.set_xlabel("training papers per fold")
    ax.set_ylabel("5-fold CV score (closed curator labels)")
    ax.set_title("Learning curve on the 996 shared papers")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    from petal_labeller.config import SHARED_DATA_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", default="1,0.25,0.5,0.75")
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--papers", type=Path, default=SHARED_DATA_DIR / "labelled_papers.jsonl")
    parser.add_argument("--taxonomy", type=Path, default=SHARED_DATA_DIR / "taxonomy.json")
    parser.add_argument("--report-only", action="store_true", help="Table and plot from results.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = _load_results()
    if not args.report_only:
        fractions = [float(f) for f in args.fractions.split(",")]
        folds = [int(f) for f in args.folds.split(",")]
        rows = measure(fractions, folds, args.papers, args.taxonomy)
    print(markdown(rows))
    print(f"plot: {plot(rows)}")


if __name__ == "__main__":
    main()
