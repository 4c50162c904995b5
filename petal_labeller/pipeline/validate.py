"""Check batch-inference output against what was staged before anything is written.

A paper the model could not read comes back as an error line: it is
quarantined and reported and the others go on. Output that breaks the contract
(a missing or extra line, a result for another paper, a score outside [0, 1],
a label the taxonomy does not know) means the model or the transform is broken,
so the whole batch is refused and nothing is written.

Accepted label rows, labelled paper ids and rejected papers are spooled to
files beside the output as they are checked, so a run of any size holds one
line at a time in memory; `write_labels` streams them back into PostgreSQL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from petal_labeller.papers import LineError, json_objects

T = TypeVar("T")


class OutputError(ValueError):
    """The inference output breaks the contract; the message names the line and field."""


class Spool(Collection[T], Generic[T]):
    """Records appended to a JSONL file and read back lazily, one line at a time.

    A sized, re-iterable collection like a list, so callers need not care that a
    100,000-paper run's rows live on disk rather than in memory.
    """

    def __init__(self, path: Path, decode: Callable[[Any], T] = lambda value: value):
        self.path = path
        self._decode = decode
        self._count = 0
        self._out: IO[str] | None = None

    def open(self) -> Spool[T]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.path.open("w", encoding="utf-8")
        return self

    def append(self, item: T) -> None:
        assert self._out is not None, "Spool.open() first"
        self._out.write(json.dumps(item, ensure_ascii=False) + "\n")
        self._count += 1

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[T]:
        if self._out is not None:
            self._out.flush()
        if not self._count:
            return
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                yield self._decode(json.loads(line))

    def __contains__(self, item: object) -> bool:
        return any(record == item for record in self)

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r}, {self._count} records)"


@dataclass
class CheckedOutput:
    """Label rows ready to upsert, the papers they cover, and the papers set aside.

    Each is any sized iterable: `check_output` gives `Spool`s on disk; a caller
    with a handful of rows may pass lists.
    """

    rows: Collection[tuple[int, str, float]] = field(default_factory=list)
    labelled: Collection[int] = field(default_factory=list)
    rejected: Collection[dict[str, Any]] = field(default_factory=list)

    def remove(self) -> None:
        """Delete the spool files (nothing to do for lists)."""
        for part in (self.rows, self.labelled, self.rejected):
            if isinstance(part, Spool):
                part.remove()


def _row(value: list[Any]) -> tuple[int, str, float]:
    return int(value[0]), str(value[1]), float(value[2])


#: One paper's result line: its scores over the whole taxonomy take a few KiB, so a
#: longer line is a broken (or hostile) transform, refused before it is held in memory.
#: It also bounds the output a run downloads: MAX_OUTPUT_LINE_BYTES per staged paper.
MAX_OUTPUT_LINE_BYTES = 64 * 1024


#: The staged input holds papers `stage` wrote from the store, which bounds no field:
#: bounded only against a corrupted file, far above any paper.
MAX_INPUT_LINE_BYTES = 1 << 30


def max_output_bytes(papers: int) -> int:
    """The most bytes the inference output of `papers` staged papers may take."""
    return max(papers, 1) * (MAX_OUTPUT_LINE_BYTES + 1)


def _iter_lines(
    path: Path, what: str, max_line_bytes: int | None = None
) -> Iterator[dict[str, Any]]:
    """The file's JSON objects one at a time, so a large backlog is never all in memory;
    a line longer than `max_line_bytes` (default: MAX_INPUT_LINE_BYTES) is refused having
    read only that much of it; the first bad line is the file's error, naming it."""
    with path.open("rb") as handle:
        for number, record in json_objects(handle, max_line_bytes or MAX_INPUT_LINE_BYTES):
            if isinstance(record, LineError):
                raise OutputError(f"{what} {path.name} line {number}: {record}")
            yield record


def _check_scores(number: int, paper_id: int, result: dict[str, Any], known: Collection[str]):
    where = f"output line {number} (paper {paper_id})"
    scores = result.get("scores")
    if not isinstance(scores, dict) or not scores:
        raise OutputError(f"{where}: field 'scores' must be a non-empty object")
    unknown = sorted(set(scores).difference(known))
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
    input_path: Path,
    output_path: Path,
    known_labels: Collection[str],
    spool_dir: Path | None = None,
) -> CheckedOutput:
    """Pair each staged paper with its result line; see the module docstring for the rules.

    The accepted rows, labelled ids and rejected papers go to `<output stem>.*.jsonl`
    files in `spool_dir` (default: the output's folder, the run's workspace).
    """
    if not output_path.exists():
        raise OutputError(f"inference output {output_path} is missing: the transform wrote nothing")
    folder = spool_dir or output_path.parent
    rows = Spool(folder / f"{output_path.stem}.rows.jsonl", _row)
    labelled = Spool(folder / f"{output_path.stem}.labelled.jsonl", int)
    rejected: Spool[dict[str, Any]] = Spool(folder / f"{output_path.stem}.rejected.jsonl")
    checked = CheckedOutput(rows=rows, labelled=labelled, rejected=rejected)
    try:
        with ExitStack() as stack:
            for spool in (rows, labelled, rejected):
                stack.callback(spool.close)
                spool.open()
            _check_lines(input_path, output_path, set(known_labels), rows, labelled, rejected)
    except BaseException:
        checked.remove()
        raise
    return checked


def _check_lines(
    input_path: Path,
    output_path: Path,
    known: Collection[str],
    rows: Spool[tuple[int, str, float]],
    labelled: Spool[int],
    rejected: Spool[dict[str, Any]],
) -> None:
    """Walk input and output side by side, appending to the three spools."""
    staged = _iter_lines(input_path, "staged input")
    results = _iter_lines(output_path, "inference output", MAX_OUTPUT_LINE_BYTES)
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
            rejected.append(
                {
                    "paper_id": paper_id,
                    "doi": paper.get("doi"),
                    "title": paper.get("title"),
                    "error": str(result["error"]),
                }
            )
            continue
        scores, labels = _check_scores(number, paper_id, result, known)
        labelled.append(paper_id)
        for label in labels:
            rows.append((paper_id, label, float(scores[label])))


def write_quarantine(rejected: Collection[dict[str, Any]], path: Path) -> Path | None:
    """Keep the rejected papers (JSONL: paper_id, doi, title, error); None if there are none."""
    if not rejected:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for item in rejected:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
    return path
