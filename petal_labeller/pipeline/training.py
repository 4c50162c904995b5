"""Retraining with a quality gate: export, train, evaluate both models, promote the better.

The held-out papers are chosen by a hash of each paper's identity (DOI, else
title), not by position, so the split stays the same as papers are added and
the candidate and the production model are always scored on the same papers.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petal_labeller.store.connection import connect
from petal_labeller.taxonomy import Taxonomy

#: The metric the gate compares; ties keep the production model.
GATE_METRIC = "micro_F1"
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
    promote: bool
    reason: str


def is_heldout(paper: dict[str, Any], fraction: float = HELDOUT_FRACTION) -> bool:
    """Stable membership of the held-out split, from the paper's identity alone."""
    identity = paper.get("doi") or (paper.get("title") or "").strip().lower()
    bucket = int(hashlib.sha256(identity.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


def export_training_set(
    folder: Path, limit: int | None = None, database_url: str | None = None
) -> TrainingSet:
    """Write the curator-labelled papers (train + held-out) and the taxonomy under `folder`."""
    from petal_labeller.store.labels import export_papers
    from petal_labeller.store.reviews import reviewed_identities
    from petal_labeller.store.taxonomy import read_taxonomy

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


def _read_jsonl(path: Path) -> list[dict]:
    # Split on "\n" only: str.splitlines() also breaks at U+2028/U+0085 inside a paper's text.
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def evaluate(artefact: Path, heldout_path: Path, taxonomy: Taxonomy, workdir: Path) -> dict:
    """Score a model artefact on the held-out papers with the inference code it ships with."""
    from petal_labeller.extras import require_extra

    require_extra("local", "evaluating a model on this machine")
    from petal_labeller.model.predict import predict_file
    from petal_labeller.model.scoring import score_results

    output = workdir / f"eval-{hashlib.sha256(str(artefact).encode()).hexdigest()[:8]}.jsonl"
    predict_file(artefact, heldout_path, output)
    papers = _read_jsonl(heldout_path)
    metrics = score_results(_read_jsonl(output), [p["labels"] for p in papers], taxonomy)
    return {name: round(float(value), 4) for name, value in metrics.items()}


def quality_gate(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    metric: str = GATE_METRIC,
    min_gain: float = 0.0,
) -> GateDecision:
    """Promote only a model that beats production on the same held-out papers."""
    if production is None:
        return GateDecision(
            True, f"no production model; candidate {metric}={candidate[metric]:.4f}"
        )
    gain = candidate[metric] - production[metric]
    verdict = "beats" if gain > min_gain else "does not beat"
    return GateDecision(
        gain > min_gain,
        f"candidate {metric}={candidate[metric]:.4f} {verdict} production "
        f"{metric}={production[metric]:.4f} (gain {gain:+.4f}, needed > {min_gain:+.4f})",
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
