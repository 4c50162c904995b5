"""Active-learning simulation: does the review queue's uncertainty pick papers worth more than
random ones?

    nice python -m benchmarks.active_learning [--model default|tfidf-svm] [--folds 0,1,2,3,4]
        [--also diverse] [--report-only]

For each of the shared 5 folds: the fold's test papers are held out; of its training papers,
200 (seeded) start as "curated" and the rest are the pool. Each round trains the model on the
curated papers, scores the test fold, and reveals 50 more pool papers to the "curator" chosen
(a) by the queue's measure (`petal_labeller.model.uncertainty.paper_uncertainty` over the
chosen labels' scores, exactly what `petal review queue` ranks by), (b) at random, or
(`--also`) another measure, until `--stop` of the training papers are revealed.

The production model (`default`) is the real stack recipe, fit each round by
`stacking.fit_prepared`: the encoder is frozen, so every shared paper is encoded once and
its vectors cached in `.petal/cache/active_learning/` (keyed by the encoder's texts and
settings); a round refits only the TF-IDF SVMs, kNN bank, venue table and combiner. The
first round (200 papers) is the same for every measure and is fit once per fold.

Results go to `benchmarks/results/active_learning_<model>.json` after every round (a
stopped run resumes where it was); the table and `docs/img/active-learning-<model>.png`
are written from them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / ".petal" / "cache" / "active_learning"
START, STEP = 200, 50
METRICS = ("P@1", "P@3", "P@5", "nDCG@3")
STRATEGIES = ("queue", "random")
#: Candidates per pick for `diverse` (Zhdanov's beta).
PREFILTER = 4
#: Training papers of a fold (796-797 of the 996 shared papers): the share revealed.
TRAIN_PAPERS = 797
#: Other measures a run can try beside the queue's (`--also diverse`).
EXTRA_STRATEGIES = ("diverse", "entropy", "top")


class Production:
    """The production stack over the shared papers, encoded once: fit(rows), outputs(rows)."""

    def __init__(self, papers, taxonomy):
        from petal_labeller.model.config import preset
        from petal_labeller.model.stacking import prepare

        self.papers, self.taxonomy, self.config = papers, taxonomy, preset("default")
        path = self._cache_path()
        pooled = np.load(path) if path.exists() else None
        self.model, self.inputs = prepare(papers, taxonomy, self.config, pooled=pooled)
        if pooled is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, self.inputs.pooled)

    def _cache_path(self) -> Path:
        from petal_labeller.model.encoder import encoder_texts

        c = self.config
        digest = hashlib.sha256(json.dumps([c.base_model, c.pooling, c.max_length]).encode())
        for text in encoder_texts([p.record for p in self.papers], c):
            digest.update(text.encode() + b"\0")
        return CACHE / f"pooled-{digest.hexdigest()[:20]}.npy"

    def fit(self, rows: list[int]) -> None:
        from petal_labeller.model.stacking import fit_prepared

        labels = [self.papers[i].labels for i in rows]
        fit_prepared(self.model, self.inputs.subset(rows), labels, self.taxonomy, self.config)

    def outputs(self, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        from petal_labeller.model.stacking import predict_prepared

        return predict_prepared(self.model, self.inputs.subset(rows))


class Baseline:
    """TF-IDF + SVM: scores sigmoid(2 x margin), labels the positive margins, closed upwards."""

    def __init__(self, papers, taxonomy):
        self.papers, self.taxonomy, self.fitted = papers, taxonomy, None

    def fit(self, rows: list[int]) -> None:
        from petal_labeller.model.baseline import fit_tfidf_svm

        self.fitted = fit_tfidf_svm([self.papers[i] for i in rows], self.taxonomy)

    def outputs(self, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        margins = self.fitted.scores([self.papers[i].record for i in rows])
        return 1 / (1 + np.exp(-2.0 * margins)), self.fitted.predicted(margins)


def queue_order(scores: np.ndarray, chosen: np.ndarray, taxonomy, measure: str) -> np.ndarray:
    """Pool positions, most uncertain first (ties: lower position first).

    "queue" is the review queue's measure (uncertainty.paper_uncertainty); "entropy" the
    first one tried (uncertainty.entropy_uncertainty); "top" plain least confidence,
    1 - the top label's score.
    """
    return np.argsort(-uncertainties(scores, chosen, taxonomy, measure), kind="stable")


def uncertainties(scores: np.ndarray, chosen: np.ndarray, taxonomy, measure: str) -> np.ndarray:
    """Each paper's uncertainty under `measure`, from its chosen labels' scores only (what
    the store keeps and the review queue reads)."""
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
    return np.asarray(values)


def pick(learner, strategy: str, pool: list[int], fold: int, revealed: int, outputs) -> list[int]:
    """Pool positions of the next STEP papers the strategy reveals; `outputs()` gives the
    current model's (scores, chosen) on the pool."""
    if strategy == "random":
        rng = np.random.default_rng([fold, revealed])
        return sorted(rng.choice(len(pool), size=min(STEP, len(pool)), replace=False).tolist())
    scores, chosen = outputs()
    if strategy != "diverse":
        return sorted(queue_order(scores, chosen, learner.taxonomy, strategy)[:STEP].tolist())
    from petal_labeller.model.neighbours import paper_text

    doubt = uncertainties(scores, chosen, learner.taxonomy, "queue")
    records = [learner.papers[i].record for i in pool]
    texts = [paper_text(r.get("title"), r.get("abstract")) for r in records]
    return sorted(diverse_pick(doubt, texts, STEP, seed=fold).tolist())


def diverse_pick(uncertainty: np.ndarray, texts: list[str], size: int, seed: int) -> np.ndarray:
    """ "Diverse mini-batch active learning" (Zhdanov 2019, arXiv:1901.05954): the
    PREFILTER x size most uncertain papers, clustered into `size` groups by k-means weighted
    by uncertainty over TF-IDF of title + abstract (what the review queue could compute from
    the database alone), and from each group the paper nearest its centre.

    Tried against the queue's plain order; it did not win (docs/model-card.md), so the
    review queue does not use it."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    top = np.argsort(-uncertainty, kind="stable")[: PREFILTER * size]
    vectors = TfidfVectorizer(stop_words="english", sublinear_tf=True, ngram_range=(1, 2))
    x = vectors.fit_transform([texts[i] for i in top])
    kmeans = KMeans(n_clusters=size, n_init=3, random_state=seed)
    groups = kmeans.fit_predict(x, sample_weight=np.maximum(uncertainty[top], 1e-6))
    picked = []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        distances = np.asarray(np.square(x[members] - kmeans.cluster_centers_[group]).sum(1))
        picked.append(top[members[int(np.argmin(distances.ravel()))]])
    rest = [i for i in top if i not in set(picked)]  # an empty group leaves a slot
    return np.array(picked + rest[: size - len(picked)], dtype=int)


class FirstRound:
    """The 200-paper round is the same for every measure: fit and score it once per fold."""

    def __init__(self, learner):
        self.learner, self.metrics, self.pool_outputs = learner, {}, {}
        self.live: int | None = None  # whose first-round model the learner holds now

    def fitted(self, fold: int, curated: list[int], pool: list[int], score_test):
        """(test metrics, pool outputs()) of the model on `curated`, reusing the first round's."""
        if len(curated) != START:
            self.learner.fit(curated)
            self.live = None
            return score_test(), lambda: self.learner.outputs(pool)
        if fold not in self.metrics:
            self.learner.fit(curated)
            self.live, self.metrics[fold] = fold, score_test()

        def outputs():
            if fold not in self.pool_outputs:
                if self.live != fold:  # scored earlier, but the pool never was: refit
                    self.learner.fit(curated)
                    self.live = fold
                self.pool_outputs[fold] = self.learner.outputs(pool)
            return self.pool_outputs[fold]

        return self.metrics[fold], outputs


def simulate(first: FirstRound, fold, strategy, splits, stop, done: dict, save) -> None:
    """Rounds of one (fold, strategy) into done["fold/strategy"], saved after every round."""
    learner = first.learner
    train_rows, test_rows = splits[fold]
    order = np.random.default_rng(fold).permutation(train_rows).tolist()
    run = done.setdefault(f"{fold}/{strategy}", {"rounds": [], "curated": order[:START]})
    gold = [learner.papers[i].labels for i in test_rows]

    def score_test() -> dict[str, float]:
        scores, chosen = learner.outputs(list(test_rows))
        return score(scores, chosen, gold, learner.taxonomy)

    while not run.get("complete"):
        curated = run["curated"]
        taken = set(curated)
        pool = [i for i in order if i not in taken]
        started = time.monotonic()
        metrics, outputs = first.fitted(fold, curated, pool, score_test)
        complete = len(curated) >= stop * len(train_rows) or not pool
        picked = [] if complete else pick(learner, strategy, pool, fold, len(curated), outputs)
        row = {"revealed": len(curated), **{m: metrics[m] for m in METRICS}}
        row["seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps({"fold": fold, "strategy": strategy, **row}), flush=True)
        run["rounds"].append(row)
        run["curated"] = curated + [pool[i] for i in picked]
        run["complete"] = complete
        save()


def score(scores, chosen, gold, taxonomy) -> dict[str, float]:
    from petal_labeller.model.scoring import score as production_score

    return production_score(scores, chosen, gold, taxonomy)


def run(model: str, folds: list[int], stop: float, strategies=STRATEGIES) -> dict:
    import torch

    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.model.data import load_labelled
    from petal_labeller.model.splits import kfold_indices
    from petal_labeller.taxonomy import Taxonomy

    torch.set_num_threads(1)
    path = RESULTS / f"active_learning_{model}.json"  # one file per model, resumable
    done = json.loads(path.read_text()) if path.exists() else {}

    def save() -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, indent=1))

    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    papers = load_labelled(SHARED_DATA_DIR / "labelled_papers.jsonl", taxonomy)
    learner = (Production if model == "default" else Baseline)(papers, taxonomy)
    splits = [(train.tolist(), test.tolist()) for train, test in kfold_indices(len(papers), 5, 0)]
    first = FirstRound(learner)
    for fold in folds:
        for strategy in strategies:
            simulate(first, fold, strategy, splits, stop, done, save)
    return done


def _present(done: dict) -> list[str]:
    return [s for s in (*STRATEGIES, *EXTRA_STRATEGIES) if any(k.endswith(f"/{s}") for k in done)]


def _values(done: dict, strategy: str, size: int, metric: str) -> list[float]:
    """Per fold (in fold order), the metric after `size` papers were revealed."""
    folds = _folds(done)
    return [r[metric] for f in folds for r in _rounds(done, f"{f}/{strategy}")
            if r["revealed"] == size]  # fmt: skip


def _folds(done: dict) -> list[int]:
    """Folds every measure present has finished: the table and plot compare paired folds."""
    strategies = _present(done)
    folds = sorted({int(k.split("/")[0]) for k in done})
    return [f for f in folds if all(done.get(f"{f}/{s}", {}).get("complete") for s in strategies)]


def _rounds(done: dict, key: str) -> list[dict]:
    return done.get(key, {}).get("rounds", [])


def table(done: dict) -> str:
    """P@1 and P@3 per round (mean ± std over folds), and each measure's P@1 gain over random."""
    strategies = _present(done)
    measures = [s for s in strategies if s != "random"]
    sizes = sorted({r["revealed"] for run in done.values() for r in run["rounds"]})
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
        share = f"{size / TRAIN_PAPERS:.0%}"
        lines.append(f"| {size} ({share}) | " + " | ".join(cells) + " |")
    folds = _folds(done)
    return f"{len(folds)} fold(s)\n" + "\n".join(lines)


def plot(done: dict, model: str, full: float | None = None) -> Path:
    """P@1 per round and measure; `full`: the same model's CV P@1 on all training papers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folds = _folds(done)
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, style in zip(_present(done), ("-o", "--s", ":^", "-.d"), strict=False):
        sizes = sorted({r["revealed"] for f in folds for r in _rounds(done, f"{f}/{strategy}")})
        values = [_values(done, strategy, size, "P@1") for size in sizes]
        ax.errorbar(sizes, [np.mean(v) for v in values], yerr=[np.std(v) for v in values],
                    fmt=style, capsize=3, label=f"{strategy} P@1 (± fold std)")  # fmt: skip
    if full is not None:
        reference = f"all {TRAIN_PAPERS} papers, 5-fold CV P@1"
        ax.axhline(full, color="grey", linestyle=":", label=reference)
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
    parser.add_argument("--report-only", action="store_true", help="Table and plot from results.")
    parser.add_argument(
        "--full-p1", type=float, help="The model's 5-fold CV P@1 on all papers (learning curve)."
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    strategies = (*STRATEGIES, *args.also)
    path = RESULTS / f"active_learning_{args.model}.json"
    if args.report_only:
        done = json.loads(path.read_text())
    else:
        done = run(args.model, [int(f) for f in args.folds.split(",")], args.stop, strategies)
    print(table(done))
    print(f"plot: {plot(done, args.model, args.full_p1)}")


if __name__ == "__main__":
    main()
