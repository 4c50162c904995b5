"""The labelled papers, the label matrix and the shared cross-validation folds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from petal_labeller.config import SHARED_DATA_DIR, petal_home
from petal_labeller.model.scoring import gold_matrix
from petal_labeller.taxonomy import Taxonomy

#: Fixed seed of the 5-fold split; every model in the table sees these folds.
FOLD_SEED = 0
N_FOLDS = 5


@dataclass(frozen=True)
class Dataset:
    papers: list[dict]
    taxonomy: Taxonomy
    labels: list[str]  # taxonomy file order = model output order
    y: np.ndarray  # (n_papers, n_labels) 0/1, the curators' labels as given (training targets)
    gold: np.ndarray  # the same closed upwards: what every row is scored against
    digest: str  # hash of the papers file, keys the embedding cache

    def venues(self, index: int) -> list[str]:
        venue = self.papers[index].get("venue")
        if venue is None:
            return []
        return [venue] if isinstance(venue, str) else list(venue)


def load(data_dir: Path = SHARED_DATA_DIR) -> Dataset:
    raw = (data_dir / "labelled_papers.jsonl").read_bytes()
    papers = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    taxonomy = Taxonomy.load(data_dir / "taxonomy.json")
    labels = list(taxonomy.ids)
    column = {label: j for j, label in enumerate(labels)}
    y = np.zeros((len(papers), len(labels)), dtype=np.float32)
    for i, paper in enumerate(papers):
        for label in paper.get("labels") or []:
            y[i, column[label]] = 1.0
    gold = gold_matrix([paper.get("labels") or [] for paper in papers], taxonomy)
    return Dataset(papers, taxonomy, labels, y, gold, hashlib.sha256(raw).hexdigest()[:12])


def folds(
    n_papers: int, n_folds: int = N_FOLDS, seed: int = FOLD_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of a shuffled KFold, the split shared by all models."""
    from sklearn.model_selection import KFold

    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.arange(n_papers))]


def cache_dir() -> Path:
    path = petal_home() / "cache" / "ablation"
    path.mkdir(parents=True, exist_ok=True)
    return path
