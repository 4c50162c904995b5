"""The one artefact check, run before anything loads: files, sizes, runtime format, JSON.

The optional check_papers.json (real papers for the precision check) is checked
too wherever it is present: the artefact is outside input, and these papers are
fed to the model at load.

Every loading path (predict, evaluate, serve, the SageMaker handlers, the local
backend) and the cheap pre-run check (`model/artefact.verify_artefact`) call
`check_contents`, so no path loads what another would refuse. It reads only the
small JSON files; the weights' shapes are checked as they load (`load.py`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.papers import PaperError
from petal_labeller.runtime.combine import HIERARCHIES
from petal_labeller.runtime.errors import ArtefactError
from petal_labeller.runtime.text import validate_paper

#: Which runtime an artefact was written for. Bump it when this runtime can no
#: longer read what an earlier one wrote (or an older one could not read ours).
RUNTIME_FORMAT = 1
RUNTIME_FILE = "runtime.json"
RUNTIME_NAME = "petal_labeller.runtime"

#: Files every artefact must hold (the tokenizer may add more, e.g. vocab.txt).
REQUIRED_FILES = (
    RUNTIME_FILE,
    "config.json",
    "model.safetensors",
    "tokenizer_config.json",
    "labeller.json",
    "labels.json",
    "thresholds.json",
)
#: The classification head: only where labeller.json's scorers use it (not the stack).
HEAD_FILE = "head.safetensors"
KNN_FILE = "knn.safetensors"
TFIDF_FILES = ("tfidf.json", "tfidf.safetensors")
STACK_FILES = ("stack.json", "stack.safetensors")
#: The JSON files the check itself reads.
CHECKED_JSON = (RUNTIME_FILE, "labeller.json", "labels.json", "thresholds.json")
#: No JSON file of ours comes near this (tfidf.json, the largest, is a few MB).
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_LABELS = 10_000
#: Optional: real papers written at training time that the precision check scores
#: (runtime/precision.py). An artefact without it is still whole (older ones lack it).
CHECK_PAPERS_FILE = "check_papers.json"
#: Bounds on it: a handful of papers, each field at most a 512-token model's text
#: (512 x CHARS_PER_TOKEN_BOUND characters); the bytes bound covers that in UTF-8.
MAX_CHECK_PAPERS = 64
MAX_CHECK_FIELD_CHARS = 8192
MAX_CHECK_VENUES = 8
MAX_CHECK_PAPERS_BYTES = 4 * 1024 * 1024
CHECK_PAPER_FIELDS = ("title", "abstract", "venue")
#: Every JSON file the check reads when present (the required ones and the optional one).
READ_JSON = (*CHECKED_JSON, CHECK_PAPERS_FILE)
COMBINERS = ("blend", "stack")
POOLINGS = ("mean", "cls", "pooler")


@dataclass(frozen=True)
class ArtefactSpec:
    """What the JSON files say, checked: settings, the label tree, thresholds."""

    settings: dict[str, Any]
    labels: list[dict[str, Any]]
    thresholds: np.ndarray
    #: check_papers.json's papers, checked; None where the artefact has none.
    check_papers: list[dict[str, Any]] | None = None

    @property
    def stacked(self) -> bool:
        return self.settings.get("combiner", "blend") == "stack"


def runtime_record() -> dict[str, Any]:
    """What runtime.json holds: the runtime and the format this artefact needs."""
    from petal_labeller import __version__

    return {"runtime": RUNTIME_NAME, "format": RUNTIME_FORMAT, "written_by": __version__}


def parse_json(data: bytes, name: str, source: str) -> Any:
    """Bounded, strict JSON (no NaN/Infinity, no nesting that exhausts the decoder)."""
    if len(data) > MAX_JSON_BYTES:
        raise ArtefactError(f"model artefact {source}: {name} exceeds {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ArtefactError(f"model artefact {source}: {name} is nested too deeply") from None
    except ValueError as exc:
        raise ArtefactError(f"model artefact {source}: {name} is not valid JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_json(model_dir: Path, name: str) -> Any:
    """One JSON file of an unpacked artefact, bounded in size before it is read."""
    path = model_dir / name
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ArtefactError(
                f"model artefact {model_dir}: {name} exceeds {MAX_JSON_BYTES} bytes"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ArtefactError(f"model artefact {model_dir}: cannot read {name}: {exc}") from exc
    return parse_json(data, name, str(model_dir))


def check_runtime(record: Any, source: str) -> None:
    """Refuse an artefact written for another runtime format (or by code that carried its own)."""
    if not isinstance(record, dict) or record.get("runtime") != RUNTIME_NAME:
        raise ArtefactError(f"model artefact {source}: {RUNTIME_FILE} does not name {RUNTIME_NAME}")
    found = record.get("format")
    if found != RUNTIME_FORMAT or isinstance(found, bool):
        raise ArtefactError(
            f"model artefact {source} needs runtime format {found!r}, this runtime reads format "
            f"{RUNTIME_FORMAT}: use an image of the petal-labeller version that wrote it "
            f"({record.get('written_by')}) or retrain"
        )


def check_label_records(labels: Any, source: str = "labels.json") -> list[dict[str, Any]]:
    """The label list must be a tree: unique string ids, listed parents, no cycle."""
    if not isinstance(labels, list) or not labels:
        raise ArtefactError(f"{source}: expected a non-empty JSON list of label records")
    if len(labels) > MAX_LABELS:
        raise ArtefactError(f"{source}: {len(labels)} labels exceed {MAX_LABELS}")
    parent: dict[str, Any] = {}
    for index, label in enumerate(labels):
        if not isinstance(label, dict) or not isinstance(label.get("id"), str):
            raise ArtefactError(f"{source}: record {index} has no string field 'id'")
        if label["id"] in parent:
            raise ArtefactError(f"{source}: label {label['id']!r} is listed twice")
        parent[label["id"]] = label.get("parent")
    for label_id, up in parent.items():
        if up is not None and (not isinstance(up, str) or up not in parent):
            raise ArtefactError(f"{source}: label {label_id!r} has unknown parent {up!r}")
    _check_acyclic(parent, source)
    return labels


def _check_acyclic(parent: Mapping[str, str | None], source: str) -> None:
    """Every chain of parents reaches a root; each label is walked once (linear time)."""
    rooted: set[str] = set()
    for start in parent:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in rooted:
            if node in on_path:
                cycle = [*path[path.index(node) :], node]
                raise ArtefactError(f"{source}: parents form a cycle: {' -> '.join(cycle[:10])}")
            path.append(node)
            on_path.add(node)
            node = parent[node]
        rooted.update(path)


def _number(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ArtefactError(f"{where} must be a finite number, not {value!r}")
    if not low <= value <= high:
        raise ArtefactError(f"{where} must be between {low} and {high}, not {value!r}")
    return float(value)


def parse_thresholds(spec: Any, label_ids: list[str]) -> np.ndarray:
    """thresholds.json -> one threshold per label, each a number in [0, 1]."""
    if not isinstance(spec, dict) or "global" not in spec:
        raise ArtefactError("thresholds.json: expected an object with field 'global'")
    default = _number(spec["global"], "thresholds.json: 'global'", 0.0, 1.0)
    values = np.full(len(label_ids), default, dtype=np.float32)
    per_label = spec.get("per_label") or {}
    if not isinstance(per_label, dict):
        raise ArtefactError("thresholds.json: 'per_label' must be an object")
    unknown = sorted(set(per_label) - set(label_ids))
    if unknown:
        raise ArtefactError(f"thresholds.json: thresholds for labels not in labels.json: {unknown}")
    for i, label_id in enumerate(label_ids):
        if label_id in per_label:
            where = f"thresholds.json: label {label_id!r}"
            values[i] = _number(per_label[label_id], where, 0.0, 1.0)
    return values


def check_settings(settings: Any) -> dict[str, Any]:
    """labeller.json: the knobs loading and scoring read, with their types."""
    where = "labeller.json"
    if not isinstance(settings, dict):
        raise ArtefactError(f"{where}: expected a JSON object")
    if settings.get("combiner", "blend") not in COMBINERS:
        raise ArtefactError(f"{where}: 'combiner' must be one of {COMBINERS}")
    if settings.get("pooling", "mean") not in POOLINGS:
        raise ArtefactError(f"{where}: 'pooling' must be one of {POOLINGS}")
    hierarchy = settings.get("hierarchy", "cap")
    if not isinstance(hierarchy, str) or hierarchy not in HIERARCHIES:
        raise ArtefactError(f"{where}: 'hierarchy' must be one of {tuple(HIERARCHIES)}")
    _number(settings.get("max_length"), f"{where}: 'max_length'", 1, 8192)
    scorers = settings.get("scorers", {"head": 1.0})
    if not isinstance(scorers, dict) or not scorers:
        raise ArtefactError(f"{where}: 'scorers' must be a non-empty object")
    for name, weight in scorers.items():
        _number(weight, f"{where}: scorer {name!r}")
    if scorers.get("knn"):
        knn = settings.get("knn")
        if not isinstance(knn, dict):
            raise ArtefactError(f"{where}: 'knn' must be an object with 'k' and 'temperature'")
        _number(knn.get("k"), f"{where}: knn 'k'")
        _number(knn.get("temperature"), f"{where}: knn 'temperature'", 1e-6)
    _number(settings.get("min_labels", 1), f"{where}: 'min_labels'", 0, MAX_LABELS)
    return settings


def check_paper_records(data: bytes, source: str) -> list[dict[str, Any]]:
    """check_papers.json: a non-empty list of at most MAX_CHECK_PAPERS paper objects with
    only title, abstract (strings) and venue (a string or a few), each of bounded length,
    and valid as papers (runtime.text.validate_paper: no NUL, no lone surrogate, not empty)."""
    where = f"model artefact {source}: {CHECK_PAPERS_FILE}"
    if len(data) > MAX_CHECK_PAPERS_BYTES:
        raise ArtefactError(f"{where} exceeds {MAX_CHECK_PAPERS_BYTES} bytes")
    papers = parse_json(data, CHECK_PAPERS_FILE, source)
    if not isinstance(papers, list) or not papers:
        raise ArtefactError(f"{where}: expected a non-empty JSON list of paper objects")
    if len(papers) > MAX_CHECK_PAPERS:
        raise ArtefactError(f"{where}: {len(papers)} papers exceed {MAX_CHECK_PAPERS}")
    for index, paper in enumerate(papers):
        _check_paper(paper, f"{where}: record {index}")
    return papers


def _check_paper(paper: Any, where: str) -> None:
    if not isinstance(paper, dict):
        raise ArtefactError(f"{where} must be a JSON object, not {type(paper).__name__}")
    unknown = sorted(set(paper) - set(CHECK_PAPER_FIELDS))
    if unknown:
        raise ArtefactError(f"{where}: unexpected fields {unknown[:5]}")
    venue = paper.get("venue")
    if isinstance(venue, list) and len(venue) > MAX_CHECK_VENUES:
        raise ArtefactError(f"{where}: field 'venue' has more than {MAX_CHECK_VENUES} names")
    texts = [("title", paper.get("title")), ("abstract", paper.get("abstract"))]
    texts += [("venue", name) for name in (venue if isinstance(venue, list) else [venue])]
    for name, value in texts:
        if isinstance(value, str) and len(value) > MAX_CHECK_FIELD_CHARS:
            raise ArtefactError(
                f"{where}: field {name!r} is longer than {MAX_CHECK_FIELD_CHARS} characters"
            )
    try:
        validate_paper(paper)  # the paper checks inference applies: types, NUL, surrogates
    except PaperError as exc:
        raise ArtefactError(f"{where}: {exc}") from None


def needed_files(settings: dict[str, Any]) -> list[str]:
    """Every file this artefact's settings make loading read."""
    scorers = settings.get("scorers", {"head": 1.0})
    names = list(REQUIRED_FILES)
    if scorers.get("head"):
        names.append(HEAD_FILE)
    if scorers.get("knn"):
        names.append(KNN_FILE)
    if scorers.get("tfidf"):
        names.extend(TFIDF_FILES)
    if settings.get("combiner") == "stack":
        names.extend(STACK_FILES)
    return names


def check_contents(names: set[str], read: Callable[[str], bytes], source: str) -> ArtefactSpec:
    """The check itself, over an artefact's file names and a reader of its small files."""
    read = _bounded_reader(read, source)
    missing = [name for name in CHECKED_JSON if name not in names]
    if missing:
        raise ArtefactError(f"model artefact {source}: missing file {', '.join(missing)}")
    check_runtime(parse_json(read(RUNTIME_FILE), RUNTIME_FILE, source), source)
    settings = check_settings(parse_json(read("labeller.json"), "labeller.json", source))
    missing = [name for name in needed_files(settings) if name not in names]
    if missing:
        raise ArtefactError(f"model artefact {source}: missing file {', '.join(missing)}")
    labels = check_label_records(parse_json(read("labels.json"), "labels.json", source))
    label_ids = [label["id"] for label in labels]
    thresholds = parse_thresholds(
        parse_json(read("thresholds.json"), "thresholds.json", source), label_ids
    )
    check_papers = None
    if CHECK_PAPERS_FILE in names:
        check_papers = check_paper_records(read(CHECK_PAPERS_FILE), source)
    return ArtefactSpec(settings, labels, thresholds, check_papers)


def _bounded_reader(read: Callable[[str], bytes], source: str) -> Callable[[str], bytes]:
    """A scan keeps only members up to archive.KEEP_BYTES: one it did not keep is too large
    (a KeyError otherwise, which no caller expects of a hostile artefact)."""

    def bounded(name: str) -> bytes:
        try:
            return read(name)
        except KeyError:
            raise ArtefactError(f"model artefact {source}: {name} is too large to read") from None

    return bounded


def check_folder(model_dir: Path) -> ArtefactSpec:
    """check_contents over an unpacked artefact; only regular files (no links) count."""
    names = {
        str(path.relative_to(model_dir))
        for path in model_dir.rglob("*")
        if path.is_file() and not path.is_symlink()
    }

    def read(name: str) -> bytes:
        path = model_dir / name
        limit = MAX_CHECK_PAPERS_BYTES if name == CHECK_PAPERS_FILE else MAX_JSON_BYTES
        if path.stat().st_size > limit:  # refused before a byte is read
            raise ArtefactError(f"model artefact {model_dir}: {name} exceeds {limit} bytes")
        return path.read_bytes()

    if not model_dir.is_dir():
        raise ArtefactError(f"model artefact {model_dir} is not a folder")
    return check_contents(names, read, str(model_dir))
