"""Candidate vs production on the same papers: a paired bootstrap of each metric's gain, and
how many papers' label sets the candidate would change (churn).

About 150 held-out papers move P@1 by about ±0.017 between folds of the same recipe, so a
gain is reported with its 95% interval. Resampling papers (the same resample for both
models: paired) keeps the papers' own difficulty out of the gain's spread. The point
values are `model.metrics`' functions; each resample reweights the papers' parts of the
same sums (a test checks the two agree), so 2,000 resamples are a few matrix products.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from petal_labeller.model.metrics import micro_f1, ndcg_at_k, precision_at_k

#: The metrics compared, in report order; the gate decides on GATE_METRIC (pipeline.training).
COMPARED_METRICS = ("micro_F1", "P@1", "P@3", "nDCG@3")
RESAMPLES = 2000
SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Outputs:
    """One model's output on the compared papers: scores and chosen labels (papers x labels)."""

    scores: np.ndarray
    chosen: np.ndarray


@dataclass(frozen=True)
class Gain:
    """candidate - production for one metric, with the bootstrap's interval of that gain."""

    candidate: float
    production: float
    gain: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class Churn:
    """Papers whose chosen label set differs between the two models, and the labels that move."""

    papers: int
    changed: int
    labels_added: int
    labels_removed: int
    #: True when the papers are a sample of a larger set (the store's model-labelled papers).
    sample: bool = False
    #: How many papers the sample was drawn from (None: the papers are the whole set).
    population: int | None = None

    @property
    def fraction(self) -> float:
        return self.changed / self.papers if self.papers else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "fraction": round(self.fraction, 4)}


def label_churn(
    candidate: np.ndarray, production: np.ndarray, population: int | None = None
) -> Churn:
    """Exact counts from two chosen-label matrices (papers x labels, 0/1) in the same order;
    `population`: the papers these were sampled from, when they are a sample."""
    if candidate.shape != production.shape:
        raise ValueError(f"chosen labels of shape {candidate.shape} vs {production.shape}")
    new, old = candidate > 0.5, production > 0.5
    return Churn(
        papers=len(new),
        changed=int((new != old).any(axis=1).sum()),
        labels_added=int((new & ~old).sum()),
        labels_removed=int((old & ~new).sum()),
        sample=population is not None and population > len(new),
        population=population,
    )


def _ranking_parts(metric: Callable[..., float], scores, gold, k: int) -> np.ndarray:
    """Each paper's value of a per-paper-mean ranking metric (0 for papers without gold)."""
    return np.array([metric(scores[i : i + 1], gold[i : i + 1], k) for i in range(len(gold))])


def _resampled(outputs: Outputs, gold: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Every compared metric on each resample (rows of `counts`: how often each paper is drawn)."""
    counts = counts.astype(np.float64)
    hits = (outputs.chosen * gold).sum(axis=1)
    tp = counts @ hits
    fp = counts @ (outputs.chosen.sum(axis=1) - hits)
    fn = counts @ (gold.sum(axis=1) - hits)
    denominator = 2 * tp + fp + fn
    values = {"micro_F1": np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=tp > 0)}
    ranked = counts @ (gold.sum(axis=1) > 0)  # ranking metrics skip papers without gold
    for name, metric, k in (
        ("P@1", precision_at_k, 1),
        ("P@3", precision_at_k, 3),
        ("nDCG@3", ndcg_at_k, 3),
    ):
        total = counts @ _ranking_parts(metric, outputs.scores, gold, k)
        values[name] = np.divide(total, ranked, out=np.zeros_like(total), where=ranked > 0)
    return values


def point_metrics(outputs: Outputs, gold: np.ndarray) -> dict[str, float]:
    """The compared metrics on all the papers, from `model.metrics` itself."""
    return {
        "micro_F1": micro_f1(outputs.chosen, gold),
        "P@1": precision_at_k(outputs.scores, gold, 1),
        "P@3": precision_at_k(outputs.scores, gold, 3),
        "nDCG@3": ndcg_at_k(outputs.scores, gold, 3),
    }


def resample_counts(papers: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """resamples x papers draw counts: each row is one bootstrap sample of the papers."""
    if papers < 1:
        raise ValueError("no papers to compare on")
    rng = np.random.default_rng(seed)
    return rng.multinomial(papers, np.full(papers, 1.0 / papers), size=resamples)


def paired_bootstrap(
    candidate: Outputs,
    production: Outputs,
    gold: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Gain]:
    """Per metric: the gain on all papers and its percentile interval over paired resamples."""
    counts = resample_counts(len(gold), resamples, seed)
    new, old = _resampled(candidate, gold, counts), _resampled(production, gold, counts)
    point_new, point_old = point_metrics(candidate, gold), point_metrics(production, gold)
    tail = (1 - confidence) / 2 * 100
    gains = {}
    for name in COMPARED_METRICS:
        low, high = np.percentile(new[name] - old[name], [tail, 100 - tail])
        gains[name] = Gain(
            candidate=float(point_new[name]),
            production=float(point_old[name]),
            gain=float(point_new[name] - point_old[name]),
            low=float(low),
            high=float(high),
        )
    return gains


@dataclass(frozen=True)
class Comparison:
    """Everything the gate, the approval page and `petal model compare` show."""

    gains: dict[str, Gain]
    heldout_churn: Churn
    store_churn: Churn | None = None
    resamples: int = RESAMPLES
    seed: int = SEED

    def with_store_churn(self, churn: Churn | None) -> Comparison:
        return Comparison(self.gains, self.heldout_churn, churn, self.resamples, self.seed)

    def as_dict(self) -> dict[str, object]:
        return {
            "papers": self.heldout_churn.papers,
            "resamples": self.resamples,
            "seed": self.seed,
            "confidence": CONFIDENCE,
            "gains": {name: gain.as_dict() for name, gain in self.gains.items()},
            "heldout_churn": self.heldout_churn.as_dict(),
            "store_churn": self.store_churn.as_dict() if self.store_churn else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Comparison:
        """The inverse of `as_dict` (the comparison travels between tasks as XCom JSON)."""

        def churn(values: dict | None) -> Churn | None:
            if values is None:
                return None
            return Churn(**{k: v for k, v in values.items() if k != "fraction"})

        return cls(
            gains={name: Gain(**values) for name, values in data["gains"].items()},
            heldout_churn=churn(data["heldout_churn"]),
            store_churn=churn(data.get("store_churn")),
            resamples=data["resamples"],
            seed=data["seed"],
        )


def compare(
    candidate: Outputs,
    production: Outputs,
    gold: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Comparison:
    """Paired bootstrap and held-out churn of two models' outputs on the same labelled papers."""
    return Comparison(
        gains=paired_bootstrap(candidate, production, gold, resamples, seed),
        heldout_churn=label_churn(candidate.chosen, production.chosen),
        resamples=resamples,
        seed=seed,
    )


class ComparisonError(ValueError):
    """Two models that cannot be compared on these papers; the message says why."""


def compare_artefacts(
    candidate: Path,
    production: Path,
    papers_path: Path,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Comparison:
    """Both artefacts label the same labelled papers through the served path, then `compare`."""
    from petal_labeller.model.data import load_labelled
    from petal_labeller.model.evaluate import model_outputs
    from petal_labeller.model.scoring import gold_matrix
    from petal_labeller.runtime.load import load_model
    from petal_labeller.taxonomy import Taxonomy

    new, old = load_model(candidate), load_model(production)
    if list(new.label_ids) != list(old.label_ids):
        raise ComparisonError(
            f"{candidate} and {production} score different label sets "
            f"({len(new.label_ids)} vs {len(old.label_ids)} labels): not the same taxonomy"
        )
    taxonomy = Taxonomy.from_records(new.labels)
    papers = load_labelled(papers_path, taxonomy)
    gold = gold_matrix([paper.labels for paper in papers], taxonomy)
    return compare(
        Outputs(*model_outputs(new, papers)),
        Outputs(*model_outputs(old, papers)),
        gold,
        resamples,
        seed,
    )
