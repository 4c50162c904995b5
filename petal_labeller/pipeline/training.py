"""Retraining with a quality gate: export, train, evaluate both models, promote the better.

The held-out papers are chosen by a hash of each paper's identity (DOI, else
title), not by position, so the split stays the same as papers are added and
the candidate and the production model are always scored on the same papers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from petal_labeller.papers import LineError, json_objects
from petal_labeller.store.connection import connect
from petal_labeller.taxonomy import Taxonomy

if TYPE_CHECKING:
    from petal_labeller.model.compare import Comparison

#: The metric the gate compares; ties keep the production model.
GATE_METRIC = "micro_F1"
#: Promote without asking only if at most this share of papers would change label set.
MAX_CHURN = 0.25
HELDOUT_FRACTION = 0.15
EXPORT_FIELDS = ("doi", "title", "abstract", "venue", "url", "labels")


@dataclass(frozen=True)
class TrainingSet:
    """Files for one training run: `train_dir` is the SageMaker `train` channel."""

    train_dir: Path
    heldout_path: Path
    train_papers: int
    heldout_papers: int
    #: Training papers whose curator labels came from `petal review apply`.
    reviewed_papers: int = 0

    @property
    def papers_path(self) -> Path:
        return self.train_dir / "papers.jsonl"

    @property
    def taxonomy_path(self) -> Path:
        return self.train_dir / "taxonomy.json"


@dataclass(frozen=True)
class GateDecision:
    """`promote`: clears the gate on its own; `ask`: a person decides (the gate is unsure)."""

    promote: bool
    reason: str
    ask: bool = False


def is_heldout(paper: dict[str, Any], fraction: float = HELDOUT_FRACTION) -> bool:
    """Stable membership of the held-out split, from the paper's identity alone."""
    identity = paper.get("doi") or (paper.get("title") or "").strip().lower()
    bucket = int(hashlib.sha256(identity.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


def export_training_set(
    folder: Path, limit: int | None = None, database_url: str | None = None
) -> TrainingSet:
    """Write the curator-labelled papers (train + held-out) and the taxonomy under `folder`."""
    from petal_labeller.pipeline.stage import check_max_papers
    from petal_labeller.store.labels import export_papers
    from petal_labeller.store.reviews import reviewed_identities
    from petal_labeller.store.taxonomy import read_taxonomy

    check_max_papers(limit, minimum=2)  # the Param's bound again
    train_dir = folder / "train"
    train_dir.mkdir(parents=True, exist_ok=True)
    heldout_path = folder / "heldout.jsonl"
    counts = {"train": 0, "heldout": 0, "reviewed": 0}
    with closing(connect(database_url)) as conn:
        taxonomy = read_taxonomy(conn)
        reviewed = reviewed_identities(conn)
        with (
            open(train_dir / "papers.jsonl", "w", encoding="utf-8") as train,
            open(heldout_path, "w", encoding="utf-8") as heldout,
        ):
            for paper in export_papers(conn, curated_only=True):
                if limit and counts["train"] + counts["heldout"] >= limit:
                    break
                split = "heldout" if is_heldout(paper) else "train"
                record = {name: paper[name] for name in EXPORT_FIELDS}
                (heldout if split == "heldout" else train).write(
                    json.dumps(record, ensure_ascii=False) + "\n"
                )
                counts[split] += 1
                if split == "train" and (paper["doi"], paper["title"]) in reviewed:
                    counts["reviewed"] += 1
    (train_dir / "taxonomy.json").write_text(
        json.dumps(taxonomy.to_records(), indent=1), encoding="utf-8"
    )
    if not counts["train"] or not counts["heldout"]:
        raise ValueError(
            f"not enough curator-labelled papers to train and evaluate: "
            f"{counts['train']} for training, {counts['heldout']} held out"
        )
    return TrainingSet(
        train_dir, heldout_path, counts["train"], counts["heldout"], counts["reviewed"]
    )


#: An output line longer than this is refused: a result for 131 labels is about 4 KB.
MAX_RESULT_LINE_BYTES = 64 * 1024


class EvaluationError(ValueError):
    """A model's held-out output breaks the contract; the message names the line and field."""


def _jsonl_lines(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line; the first bad line (over
    MAX_RESULT_LINE_BYTES, not one JSON object) is the file's error, naming it."""
    with open(path, "rb") as handle:
        for number, record in json_objects(handle, MAX_RESULT_LINE_BYTES):
            if isinstance(record, LineError):
                raise EvaluationError(f"{what} line {number}: {record}")
            yield number, record


def _checked_result(number: int, result: dict[str, Any], paper: dict[str, Any], known: set[str]):
    """Output line `number`, for `paper`; refused if it is another paper's or malformed."""
    where = f"output line {number}"
    if "error" in result:  # a paper the model could not read: scored as no labels, as locally
        return result
    for name in ("doi", "title"):
        if result.get(name) != paper.get(name):
            raise EvaluationError(
                f"{where}: field {name!r} is {result.get(name)!r}, but the held-out paper "
                f"in its place has {paper.get(name)!r}"
            )
    scores, labels = result.get("scores"), result.get("labels")
    if not isinstance(scores, dict) or not isinstance(labels, list):
        raise EvaluationError(f"{where}: fields 'scores' (object) and 'labels' (list) are required")
    unknown = sorted(set(scores).union(map(str, labels)).difference(known))
    if unknown:
        raise EvaluationError(f"{where}: labels not in the taxonomy: {unknown[:5]}")
    for label, value in scores.items():
        number_ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not number_ok or not math.isfinite(value) or not 0 <= value <= 1:
            raise EvaluationError(f"{where}: field 'scores' {label!r} = {value!r} is not in [0, 1]")
    return result


def score_predictions(predictions: Path, heldout_path: Path, taxonomy: Taxonomy) -> dict:
    """Score one model's output for the held-out papers (one line each, in order) against
    their curator labels: the gate's numbers, from the worker's run or SageMaker's alike.

    numpy only (`model.scoring`), so a worker without the model stack scores a transform's output.
    """
    from petal_labeller.model.scoring import score_results

    papers, results = checked_results(predictions, heldout_path, taxonomy)
    metrics = score_results(results, [p["labels"] for p in papers], taxonomy)
    return {name: round(float(value), 4) for name, value in metrics.items()}


def checked_results(
    predictions: Path, heldout_path: Path, taxonomy: Taxonomy
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(held-out papers, one checked output line each, in order); EvaluationError otherwise."""
    papers = [paper for _, paper in _jsonl_lines(heldout_path, "held-out papers")]
    known = set(taxonomy.ids)
    results = []
    for number, result in _jsonl_lines(predictions, f"output {predictions.name}"):
        if len(results) == len(papers):
            raise EvaluationError(f"output has more lines than the {len(papers)} held-out papers")
        results.append(_checked_result(number, result, papers[len(results)], known))
    if len(results) != len(papers):
        raise EvaluationError(
            f"output has {len(results)} lines for {len(papers)} held-out papers: "
            "expected one result per paper"
        )
    return papers, results


def evaluate(artefact: Path, heldout_path: Path, taxonomy: Taxonomy, workdir: Path) -> dict:
    """Score a model artefact on the held-out papers, run on this machine with the same
    handlers SageMaker's batch transform runs (needs the `local` extra)."""
    from petal_labeller.extras import require_extra

    require_extra("local", "evaluating a model on this machine")
    from petal_labeller.model.predict import predict_file

    output = heldout_output(artefact, workdir)
    predict_file(artefact, heldout_path, output)
    return score_predictions(output, heldout_path, taxonomy)


def heldout_output(artefact: Path, workdir: Path) -> Path:
    """Where `evaluate` leaves a model's held-out output (the gate's bootstrap reads it)."""
    return workdir / f"eval-{hashlib.sha256(str(artefact).encode()).hexdigest()[:8]}.jsonl"


def quality_gate(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    metric: str = GATE_METRIC,
    min_gain: float = 0.0,
    comparison: Comparison | None = None,
    max_churn: float = MAX_CHURN,
) -> GateDecision:
    """Promote only a model that beats production on the same held-out papers.

    With a `comparison` (paired bootstrap) the gate judges the gain's 95% interval, not
    its point value: promote when the lower bound clears `min_gain` and churn is at most
    `max_churn`; keep production when the upper bound is below 0; otherwise ask a person.
    """
    if production is None:
        return GateDecision(
            True, f"no production model; candidate {metric}={candidate[metric]:.4f}"
        )
    if comparison is not None:
        return _interval_gate(comparison, metric, min_gain, max_churn)
    gain = candidate[metric] - production[metric]
    verdict = "beats" if gain > min_gain else "does not beat"
    return GateDecision(
        gain > min_gain,
        f"candidate {metric}={candidate[metric]:.4f} {verdict} production "
        f"{metric}={production[metric]:.4f} (gain {gain:+.4f}, needed > {min_gain:+.4f})",
    )


def _interval_gate(
    comparison: Comparison, metric: str, min_gain: float, max_churn: float
) -> GateDecision:
    gain = comparison.gains[metric]
    churns = [c for c in (comparison.heldout_churn, comparison.store_churn) if c is not None]
    churn = max(c.fraction for c in churns)
    said = (
        f"{metric} gain {gain.gain:+.4f} (95% interval {gain.low:+.4f} to {gain.high:+.4f}, "
        f"needed lower bound > {min_gain:+.4f}); churn {churn:.1%} of papers "
        f"(limit {max_churn:.1%})"
    )
    if gain.low > min_gain and churn <= max_churn:
        return GateDecision(True, f"{said}: clearly better")
    if gain.high < 0:
        return GateDecision(False, f"{said}: clearly worse, production stays")
    why = "the gain may be noise" if gain.low <= min_gain else "too many labels would change"
    return GateDecision(False, f"{said}: {why}, a person decides", ask=True)


def compare_outputs(
    candidate_output: Path, production_output: Path, heldout_path: Path, taxonomy: Taxonomy
) -> Comparison:
    """Paired bootstrap and churn of two models' checked outputs on the held-out papers."""
    from petal_labeller.model.compare import Outputs, compare
    from petal_labeller.model.scoring import gold_matrix, result_matrices

    papers, candidate = checked_results(candidate_output, heldout_path, taxonomy)
    _, production = checked_results(production_output, heldout_path, taxonomy)
    gold = gold_matrix([p["labels"] for p in papers], taxonomy)
    return compare(
        Outputs(*result_matrices(candidate, taxonomy.ids)),
        Outputs(*result_matrices(production, taxonomy.ids)),
        gold,
    )


def promote_model(
    version: str,
    artefact: Path,
    metrics: dict[str, float],
    base_model: str,
    database_url: str | None = None,
):
    """Keep the artefact under PETAL_HOME/models and register it as the production model.

    The same path as `petal model register --promote` (`pipeline.promotion`).
    """
    from petal_labeller.pipeline.promotion import register_model

    model, _ = register_model(
        version,
        str(artefact),
        metrics=metrics,
        base_model=base_model,
        promote=True,
        verify=False,  # evaluated on the held-out papers a moment ago
        database_url=database_url,
    )
    return model
