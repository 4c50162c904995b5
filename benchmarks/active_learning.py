"""Active-learning simulation: does the review queue's uncertainty pick papers worth more than
random ones?

    nice python -m benchmarks.active_learning [--model default|tfidf-svm] [--folds 0,1,2,3,4]

For each of the shared 5 folds: the fold's test papers are held out; of its training papers,
200 (seeded) start as "curated" and the rest are the pool. Each round trains the model on the
curated papers, scores the test fold, and reveals 50 more pool papers to the "curator" chosen
(a) by the queue's measure (`petal_labeller.model.uncertainty.paper_uncertainty` over the
chosen labels' scores, exactly what `petal review queue` ranks by) or (b) at random, until
`--stop` of the training papers are revealed. Results go to
`benchmarks/results/active_learning_<model>.json` (resumable); the table and
`docs/img/active-learning-<model>.png` are written from them.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
START, STEP = 200, 50
METRICS = ("P@1", "P@3", "nDCG@3")
STRATEGIES = ("queue", "random")


def _fit(model: str, papers, taxonomy):
    """(score_test, choose): test metrics, and (scores, chosen) on pool papers."""
    from petal_labeller.model.evaluate import score_baseline, score_model

    if model == "tfidf-svm":
        from petal_labeller.model.baseline import fit_tfidf_svm

        fitted = fit_tfidf_svm(papers, taxonomy)

        def outputs(pool):
            margins = fitted.scores([p.record for p in pool])
            return 1 / (1 + np.exp(-2.0 * margins)), fitted.predicted(margins)

        return (lambda test: score_baseline(papers, test, taxonomy)["metrics"]), outputs
    from petal_labeller.model.config import preset
    from petal_labeller.model.evaluate import model_outputs
    from petal_labeller.model.train import fit

    trained = fit(papers, taxonomy, preset("default"), progress=False)
    return (lambda test: score_model(trained.model, test, taxonomy)["metrics"]), (
        lambda pool: model_outputs(trained.model, pool)
    )


def queue_order(scores: np.ndarray, chosen: np.ndarray, taxonomy) -> np.ndarray:
    """Pool positions, most uncertain first (ties: lower position first)."""
    from petal_labeller.model.uncertainty import paper_uncertainty

    ids = taxonomy.ids
    values = [
        paper_uncertainty({ids[c]: float(s[c]) for c in np.flatnonzero(k)}, taxonomy)
        for s, k in zip(scores, chosen, strict=True)
    ]
    return np.argsort(-np.asarray(values), kind="stable")


def simulate(model, fold, strategy, papers, taxonomy, splits, stop) -> list[dict]:
    train_rows, test_rows = splits[fold]
    rng = np.random.default_rng(fold)
    order = rng.permutation(train_rows)
    curated, pool = list(order[:START]), list(order[START:])
    test = [papers[i] for i in test_rows]
    rounds = []
    while True:
        started = time.monotonic()
        score_test, outputs = _fit(model, [papers[i] for i in curated], taxonomy)
        metrics = score_test(test)
        rounds.append({"revealed": len(curated), "seconds": round(time.monotonic() - started, 1),
                       **{m: metrics[m] for m in METRICS}})  # fmt: skip
        print(json.dumps({"fold": fold, "strategy": strategy, **rounds[-1]}), flush=True)
        if len(curated) >= stop * len(train_rows) or not pool:
            return rounds
        if strategy == "queue":
            scores, chosen = outputs([papers[i] for i in pool])
            picked = set(queue_order(scores, chosen, taxonomy)[:STEP].tolist())
        else:
            picked = set(rng.choice(len(pool), size=min(STEP, len(pool)), replace=False).tolist())
        curated += [pool[i] for i in sorted(picked)]
        pool = [p for i, p in enumerate(pool) if i not in picked]


def run(model: str, folds: list[int], stop: float) -> dict:
    import torch

    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.model.data import load_labelled
    from petal_labeller.model.splits import kfold_indices
    from petal_labeller.taxonomy import Taxonomy

    torch.set_num_threads(1)
    path = RESULTS / f"active_learning_{model}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    papers = load_labelled(SHARED_DATA_DIR / "labelled_papers.jsonl", taxonomy)
    splits = kfold_indices(len(papers), 5, 0)
    for fold in folds:
        for strategy in STRATEGIES:
            key = f"{fold}/{strategy}"
            if key not in done:
                done[key] = simulate(model, fold, strategy, papers, taxonomy, splits, stop)
                RESULTS.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(done, indent=1))
    return done


def table(done: dict) -> str:
    folds = sorted({int(k.split("/")[0]) for k in done})
    sizes = sorted({r["revealed"] for runs in done.values() for r in runs})
    head = "| revealed | " + " | ".join(f"{s} {m}" for m in ("P@1", "P@3") for s in STRATEGIES)
    lines = [head + " | queue − random P@1 |", "|---" * 6 + "|"]
    for size in sizes:
        cells, p1 = [], {}
        for metric in ("P@1", "P@3"):
            for strategy in STRATEGIES:
                values = [r[metric] for f in folds for r in done.get(f"{f}/{strategy}", [])
                          if r["revealed"] == size]  # fmt: skip
                cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "")
                if metric == "P@1":
                    p1[strategy] = values
        diff = ""
        if len(p1["queue"]) == len(p1["random"]) and p1["queue"]:
            gaps = np.array(p1["queue"]) - np.array(p1["random"])
            diff = f"{gaps.mean():+.3f} ± {gaps.std():.3f}"
        lines.append(f"| {size} | " + " | ".join(cells) + f" | {diff} |")
    return f"{len(folds)} fold(s)\n" + "\n".join(lines)


def plot(done: dict, model: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folds = sorted({int(k.split("/")[0]) for k in done})
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, style in zip(STRATEGIES, ("-o", "--s"), strict=True):
        sizes = sorted({r["revealed"] for f in folds for r in done.get(f"{f}/{strategy}", [])})
        means = [np.mean([r["P@1"] for f in folds for r in done.get(f"{f}/{strategy}", [])
                          if r["revealed"] == s]) for s in sizes]  # fmt: skip
        ax.plot(sizes, means, style, label=f"{strategy} P@1")
    ax.set_xlabel("curated training papers")
    ax.set_ylabel(f"P@1 on the held-out fold ({len(folds)} fold(s))")
    ax.set_title(f"Active learning simulation, {model}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = ROOT / "docs" / "img" / f"active-learning-{model}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["default", "tfidf-svm"], default="default")
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--stop", type=float, default=0.6, help="Revealed share to stop at.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    done = run(args.model, [int(f) for f in args.folds.split(",")], args.stop)
    print(table(done))
    print(f"plot: {plot(done, args.model)}")


if __name__ == "__main__":
    main()
