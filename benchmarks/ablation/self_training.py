"""Round three, lever 4: do confident machine labels on new papers add to curated ones?

`python -m benchmarks.ablation.self_training`. A simulation on the shared folds, since
the shared data has no unlabelled papers: each outer fold's training papers are split
in half, "curated" (labels kept) and "new" (labels hidden). A model fit on the curated
half labels the new half; the new papers it is most sure of join the training set with
their machine labels, weighted down, and the model is refit. Test folds hold curated
papers only. The bounds beside it: the curated half alone, and both halves with the
curators' labels (what curating the new papers would give).

Measured for the two strongest bases alone (kNN over frozen MiniLM, TF-IDF + linear
SVMs): their direction decides whether the stack is worth the cost of the same runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import data as data_module
from . import embeddings as emb
from . import scorers as s
from .evaluate import Result, format_row, header, ranking_metrics

KNN_K, KNN_T = 20, 0.1
#: A machine label is kept when its score is at least this (kNN: the neighbours' vote share).
KNN_LABEL_MIN = 0.5
SVM_LABEL_MIN = 0.0  # a positive margin


def pseudo_labels(scores: np.ndarray, minimum: float) -> np.ndarray:
    """0/1 machine labels: every label at or above `minimum`, at least the top one."""
    labels = (scores >= minimum).astype(np.float32)
    labels[np.arange(len(scores)), scores.argmax(1)] = 1.0
    return labels


def confident(scores: np.ndarray, share: float) -> np.ndarray:
    """Positions of the `share` of papers whose top score is highest."""
    top = scores.max(1)
    keep = max(1, round(share * len(top)))
    return np.argsort(-top, kind="stable")[:keep]


def knn_fit_predict(x, bank_rows, bank_labels, weights, query_rows):
    from petal_labeller.runtime.scorers import knn_scores

    return knn_scores(x[query_rows], x[bank_rows], bank_labels * weights[:, None], KNN_K, KNN_T)


def svm_fit_predict(texts, bank_rows, bank_labels, weights, query_rows, c=0.5):
    return s.svm_margins(texts, bank_rows, bank_labels, query_rows, c, True, weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bases", nargs="*", default=["knn", "svm"], choices=("knn", "svm"))
    parser.add_argument("--weights", type=float, nargs="*", default=[0.3, 1.0])
    parser.add_argument("--shares", type=float, nargs="*", default=[0.5, 1.0])
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/self_training.json")
    )
    args = parser.parse_args()
    data = data_module.load()
    x = emb.paper_embeddings(data, "title_abstract", 256)
    texts = [emb.paper_text(p, "title_abstract_venue") for p in data.papers]
    parents = s.parent_index(data)
    fits = {
        "kNN": (lambda *a: knn_fit_predict(x, *a), KNN_LABEL_MIN),
        "TF-IDF SVM": (lambda *a: svm_fit_predict(texts, *a), SVM_LABEL_MIN),
    }
    chosen = {"knn": "kNN", "svm": "TF-IDF SVM"}
    print(f"# {len(data.papers)} papers; {platform.node()}, {os.cpu_count()} cores, ", end="")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    rows: dict[str, list[dict[str, float]]] = {}

    def score(name: str, test: np.ndarray, scores: np.ndarray) -> None:
        # Scored as the production model ranks: the hierarchy lifted (TrainConfig's default).
        lifted = s.propagate_max(scores, parents)
        rows.setdefault(name, []).append(ranking_metrics(data.gold[test], lifted))

    for fold, (train, test) in enumerate(data_module.folds(len(data.papers))):
        rng = np.random.default_rng(fold)
        shuffled = rng.permutation(train)
        curated, new = shuffled[: len(train) // 2], shuffled[len(train) // 2 :]
        for base in args.bases:
            name = chosen[base]
            fit, minimum = fits[name]
            ones = np.ones(len(curated), dtype=np.float32)
            score(f"{name}: curated half only", test, fit(curated, data.y[curated], ones, test))
            both = np.concatenate([curated, new])
            score(
                f"{name}: both halves curated (upper bound)",
                test,
                fit(both, data.y[both], np.ones(len(both), dtype=np.float32), test),
            )
            on_new = fit(curated, data.y[curated], ones, new)
            machine = s.propagate_max(pseudo_labels(on_new, minimum), parents)
            for share in args.shares:
                keep = confident(on_new, share)
                for weight in args.weights:
                    bank = np.concatenate([curated, new[keep]])
                    labels = np.concatenate([data.y[curated], machine[keep]])
                    weights = np.concatenate([ones, np.full(len(keep), weight, dtype=np.float32)])
                    score(
                        f"{name}: curated + the {share:.0%} most confident new papers, "
                        f"machine labels weighted {weight:g}",
                        test,
                        fit(bank, labels, weights, test),
                    )
        print(f"  fold {fold} done", flush=True)
    print(header())
    for name, per_fold in rows.items():
        print(format_row(Result(name, per_fold, 0.0)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
