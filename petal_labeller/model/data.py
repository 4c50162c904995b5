"""Labelled papers for training and evaluation: read, validate, turn into targets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.taxonomy import Taxonomy


class TrainingDataError(ValueError):
    """A labelled paper cannot be used; the message names the line and the field."""


@dataclass(frozen=True)
class LabelledPaper:
    line: int
    record: dict[str, Any]
    labels: tuple[str, ...]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_labelled(line_number: int, raw: bytes, taxonomy: Taxonomy) -> LabelledPaper:
    from petal_labeller.papers import decode_line
    from petal_labeller.runtime.text import validate_paper

    where = f"line {line_number}"
    try:
        # decode_line: the one decoder, so bad UTF-8, JSON and deep nesting are this line's error
        record = validate_paper(decode_line(raw))
    except ValueError as exc:  # LineError and PaperError
        raise TrainingDataError(f"{where}: {exc}") from exc
    labels = record.get("labels")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise TrainingDataError(f"{where}: field 'labels' must be a list of label ids")
    unknown = taxonomy.unknown(labels)
    if unknown:
        raise TrainingDataError(f"{where}: field 'labels' has unknown label ids {unknown}")
    return LabelledPaper(line_number, record, tuple(dict.fromkeys(labels)))


def load_labelled(
    path: str | Path, taxonomy: Taxonomy, *, strict: bool = True
) -> list[LabelledPaper]:
    """Every labelled paper in a JSONL file; strict=False skips bad or unlabelled lines."""
    papers = []
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                paper = parse_labelled(line_number, raw, taxonomy)
            except TrainingDataError:
                if strict:
                    raise
                continue
            if paper.labels:
                papers.append(paper)
            elif strict:
                raise TrainingDataError(f"line {line_number}: field 'labels' is empty")
    if not papers:
        raise TrainingDataError(f"{path}: no labelled papers")
    return papers


def target_matrix(papers: list[LabelledPaper], taxonomy: Taxonomy, close: bool) -> np.ndarray:
    """papers x labels 0/1 matrix in taxonomy order; `close` adds each label's ancestors."""
    column = {label_id: i for i, label_id in enumerate(taxonomy.ids)}
    targets = np.zeros((len(papers), len(taxonomy)), dtype=np.float32)
    for row, paper in enumerate(papers):
        labels = taxonomy.close_upwards(paper.labels) if close else paper.labels
        targets[row, [column[label] for label in labels]] = 1.0
    return targets
