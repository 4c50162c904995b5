"""Check batch-inference output against what was staged before anything is written.

A paper the model could not read comes back as an error line: it is
quarantined and reported and the others go on. Output that breaks the contract
(a missing or extra line, a result for another paper, a score outside [0, 1],
a label the taxonomy does not know) means the model or the transform is broken,
so the whole batch is refused and nothing is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any


class OutputError(ValueError):
    """The inference output breaks the contract; the message names the line and field."""


@dataclass
class CheckedOutput:
    """Label rows ready to upsert, the papers they cover, and the papers set aside."""

    rows: list[tuple[int, str, float]] = field(default_factory=list)
    labelled: list[int] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _iter_lines(path: Path, what: str) -> Iterator[dict[str, Any]]:
    """The file's JSON objects one at a time, so a large backlog is never all in memory."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise OutputError(
                    f"{what} {path.name} line {number}: not valid JSON: {exc}"
                ) from exc
            if not isinstance(record, dict):
                raise OutputError(f"{what} {path.name} line {number}: expected a JSON object")
            yield record


def _check_scores(number: int, paper_id: int, result: dict[str, Any], known: Collection[str]):
    where = f"output line {number} (paper {paper_id})"
    scores = result.get("scores")
    if not isinstance(scores, dict) or not scores:
        raise OutputError(f"{where}: field 'scores' must be a non-empty object")
    unknown = sorted(set(scores) - set(known))
    if unknown:
        raise OutputError(f"{where}: field 'scores' has labels not in the taxonomy: {unknown[:5]}")
    for label_id, score in scores.items():
        if not isinstance(score, int | float) or not math.isfinite(score) or not 0 <= score <= 1:
            raise OutputError(f"{where}: field 'scores' {label_id!r} = {score!r} is not in [0, 1]")
    labels = result.get("labels")
    if not isinstance(labels, list):
        raise OutputError(f"{where}: field 'labels' must be a list of label ids")
    missing = [label for label in labels if label not in scores]
    if missing:
        raise OutputError(f"{where}: field 'labels' has labels without a score: {missing[:5]}")
    return scores, labels


def check_output(
    input_path: Path, output_path: Path, known_labels: Collection[str]
) -> CheckedOutput:
    """Pair each staged paper with its result line; see the module docstring for the rules."""
    if not output_path.exists():
        raise OutputError(f"inference output {output_path} is missing: the transform wrote nothing")
    staged = _iter_lines(input_path, "staged input")
    results = _iter_lines(output_path, "inference output")
    checked = CheckedOutput()
    for number, (paper, result) in enumerate(zip_longest(staged, results), start=1):
        if paper is None or result is None:
            n_staged = number - 1 + (paper is not None) + sum(1 for _ in staged)
            n_results = number - 1 + (result is not None) + sum(1 for _ in results)
            raise OutputError(
                f"inference output has {n_results} lines for {n_staged} staged papers: "
                "expected one result per input line"
            )
        paper_id = int(paper["paper_id"])
        if result.get("paper_id", paper_id) != paper_id:
            raise OutputError(
                f"output line {number}: field 'paper_id' is {result.get('paper_id')!r}, "
                f"but line {number} of the input is paper {paper_id}"
            )
        if "error" in result:
            checked.rejected.append(
                {
                    "paper_id": paper_id,
                    "doi": paper.get("doi"),
                    "title": paper.get("title"),
                    "error": str(result["error"]),
                }
            )
            continue
        scores, labels = _check_scores(number, paper_id, result, known_labels)
        checked.labelled.append(paper_id)
        checked.rows.extend((paper_id, label, float(scores[label])) for label in labels)
    return checked


def write_quarantine(rejected: list[dict[str, Any]], path: Path) -> Path | None:
    """Keep the rejected papers (JSONL: paper_id, doi, title, error); None if there are none."""
    if not rejected:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in rejected), encoding="utf-8"
    )
    return path
