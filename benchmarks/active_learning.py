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
#: Other measures a run can try beside the queue's (`--also top`).
EXTRA_STRATEGIES = ("entropy", "top")


def _fit(model: str, papers, taxonomy):
    """(score_test, choose): test metrics, and (scores, chosen) on pool papers."""
    from petal_labeller.model.evaluate import score_baseline

    if model == "tfidf-svm":
        from petal_labeller.model.baseline import fit_tfidf_svm

        fitted = fit_tfidf_svm(papers, taxonomy)

        def outputs(pool):
            margins = fitted.scores([p.record for p in pool])
            return 1 / (1 + np.exp(-2.0 * margins)), fitted.predicted(margins)

        return (lambda test: score_baseline(papers, test, taxonomy)["metrics"]), outputs
    from petal_labeller.model.config import preset
    from petal_labeller.model.scoring import score
    from petal_labeller.model.train import fit

    config = preset("default")
    trained = fit(papers, taxonomy, config, progress=False)

    def outputs(pool):
        return cached_outputs(trained.model, pool, config)

    def score_test(test):
        scores, chosen = outputs(test)
        return score(scores, chosen, [p.labels for p in test], taxonomy)

    return score_test, outputs


def cached_outputs(model, papers, config) -> tuple[np.ndarray, np.ndarray]:
    """(scores, chosen) as `model.predict` gives them, from the frozen encoder's cached
    vectors: the simulation scores the same papers every round, so it encodes them once."""
    from petal_labeller.model.encoder import encoder_texts, frozen_embeddings
    from petal_labeller.model.selection import predicted_matrix

    records = [p.record for p in papers]
    texts = encoder_texts(records, config)
    pooled = frozen_embeddings(model.net, model.tokenizer, texts, config)
    logits = np.zeros((len(records), len(model.labels)), np.float32)
    scores = model.blend(model.components(texts, pooled, logits, records))
    return scores, predicted_matrix(scores, model.thresholds, model)


def queue_order(scores: np.ndarray, chosen: np.ndarray, taxonomy, measure: str) -> np.ndarray:
    """Pool positions, most uncertain first (ties: lower position first).

    "queue" is the review queue's measure (uncertainty.paper_uncertainty); "entropy" the
    first one tried (uncertainty.entropy_uncertainty); "top" plain least confidence,
    1 - the top label's score.
    """
    from petal_labeller.model.uncertainty import (
        children_map,
        entropy_uncertainty,
        paper_uncertainty,
    )

    ids, tree = taxonomy.ids, children_map(taxonomy)
    measures = {
        "queue": lambda chosen_scores: paper_uncertainty(chosen_scores, taxonomy, tree),
        "entropy": lambda chosen_scores: entropy_uncertainty(chosen_scores, taxonomy),
        "top": lambda chosen_scores: 1.0 - max(chosen_scores.values()),
    }
    values = [
        measures[measure]({ids[c]: float(s[c]) for c in np.flatnonzero(k)})
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
        if strategy != "random":
            scores, chosen = outputs([papers[i] for i in pool])
            picked = set(queue_order(scores, chosen, taxonomy, strategy)[:STEP].tolist())
        else:
            picked = set(rng.choice(len(pool), size=min(STEP, len(pool)), replace=False).tolist())
        curated += [pool[i] for i in sorted(picked)]
        pool = [p for i, p in enumerate(pool) if i not in picked]


def run(model: str, folds: list[int], stop: float, strategies=STRATEGIES) -> dict:
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
        for strategy in strategies:
            key = f"{fold}/{strategy}"
            if key not in done:
                done[key] = simulate(model, fold, strategy, papers, taxonomy, splits, stop)
                RESULTS.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(done, indent=1))
    return done


def _present(done: dict) -> list[str]:
    return [s for s in (*STRATEGIES, *EXTRA_STRATEGIES) if any(k.endswith(f"/{s}") for k in done)]


def _values(done: dict, strategy: str, size: int, metric: str) -> list[float]:
    """Per fold (in fold order), the metric after `size` papers were revealed."""
    folds = sorted({int(k.split("/")[0]) for k in done})
    return [r[metric] for f in folds for r in done.get(f"{f}/{strategy}", [])
            if r["revealed"] == size]  # fmt: skip


def table(done: dict) -> str:
    """P@1 and P@3 per round (mean ± std over folds), and each measure's P@1 gain over random."""
    strategies = _present(done)
    measures = [s for s in strategies if s != "random"]
    sizes = sorted({r["revealed"] for runs in done.values() for r in runs})
    head = "| revealed | " + " | ".join(f"{s} {m}" for m in ("P@1", "P@3") for s in strategies)
    head += "".join(f" | {s} − random P@1" for s in measures) + " |"
    lines = [head, "|---" * (1 + 2 * len(strategies) + len(measures)) + "|"]
    for size in sizes:
        cells = []
        for metric in ("P@1", "P@3"):
            for strategy in strategies:
                values = _values(done, strategy, size, metric)
                cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "")
        base = _values(done, "random", size, "P@1")
        for strategy in measures:
            ours = _values(done, strategy, size, "P@1")
            gaps = np.array(ours) - np.array(base) if len(ours) == len(base) and base else None
            cells.append("" if gaps is None else f"{gaps.mean():+.3f} ± {gaps.std():.3f}")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    folds = sorted({int(k.split("/")[0]) for k in done})
    return f"{len(folds)} fold(s)\n" + "\n".join(lines)


def plot(done: dict, model: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folds = sorted({int(k.split("/")[0]) for k in done})
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, style in zip(_present(done), ("-o", "--s", ":^", "-.d"), strict=False):
        sizes = sorted({r["revealed"] for f in folds for r in done.get(f"{f}/{strategy}", [])})
        means = [np.mean(_values(done, strategy, size, "P@1")) for size in sizes]
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
    parser.add_argument("--also", choices=EXTRA_STRATEGIES, action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    strategies = (*STRATEGIES, *args.also)
    done = run(args.model, [int(f) for f in args.folds.split(",")], args.stop, strategies)
    print(table(done))
    print(f"plot: {plot(done, args.model)}")


if __name__ == "__main__":
    main()
