"""A curator's decision file read back: the queue file with four fields filled in per paper.

JSONL or CSV (the queue's own columns; others are ignored):

- `reviewer`: who decided (or `petal review apply --reviewer NAME` for every line);
- `accept`: true when the model's labels are right as far as `remove`/`add` say;
- `remove`: model labels that are wrong (JSON list, or "id; id" in CSV);
- `add`: labels from the taxonomy the model missed.

`paper_id` with `doi` or `doi_url` (both from the queue) name the paper: a
paper with a DOI is decided only by a line carrying that DOI, so a mistyped id
never decides another paper. The store then refuses a decision for a paper
that was not queued, or one that would replace another curator's labels
(`store.reviews.apply_reviews`).

`model_version` and `model_labels` (both from the queue) say what the curator saw;
a line without them takes what `petal review queue` recorded it sent for the paper
(never the production model of the day: a promotion must not change what an
`accept` means). A decision whose shown labels are no longer that model's labels
for the paper, or not the labels the queue sent, is refused: queue it again.

The paper's curator labels become: the labels shown, minus `remove`, plus
`add`, closed upwards. A line with none of the three is not reviewed yet and is
skipped. Each bad line is rejected with its number, field and reason, like an
import; `reviewed_at` (ISO 8601) is optional and defaults to now. Rejections are
streamed (`petal_labeller.rejects`), so memory does not grow with bad lines.

CSV as spreadsheets save it: a UTF-8 BOM is read past; the header must name each
column once; a row must lie on one line (the queue writes no line breaks in cells),
so a quote left open, which would swallow the rows after it, is that row's reject.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions

from petal_labeller.instants import InstantError, parse_instant
from petal_labeller.papers import (
    LineError,
    PaperError,
    Rejection,
    bounded_lines,
    decode_line,
    normalise_doi,
)
from petal_labeller.rejects import RejectSink
from petal_labeller.review.errors import ReviewError
from petal_labeller.store import reviews
from petal_labeller.taxonomy import Taxonomy
from petal_labeller.versions import VersionNameError, check_version

MAX_DECISIONS = 100_000
MAX_LINE_BYTES = 1 << 20
MAX_REVIEWER = 200
#: Shown text of a rejected line, in the rejects file.
MAX_SHOWN = 2000
_TRUE = {"true", "yes", "y", "1", "x", "accept", "accepted"}
_FALSE = {"false", "no", "n", "0", ""}
_SPLIT = re.compile(r"[;,\s]+")
#: ASCII digits only: str.isdigit() and int() also read "١٢" and "²" as numbers.
_ID = re.compile(r"[0-9]{1,19}")
_BOM = "\ufeff"
#: The passes that find rejections, each in line order (`RejectSink` parts).
READING, CHECKING, STORING = 0, 1, 2


class DecisionError(ValueError):
    """One field of one decision is invalid; `field` names it for the rejects file."""

    def __init__(self, field: str, message: str):
        super().__init__(f"field {field!r}: {message}")
        self.field = field


@dataclass(frozen=True)
class Draft:
    """A decision with its fields checked, before it is checked against the store."""

    line: int
    paper_id: int
    doi: str | None
    doi_field: str  # "doi" or "doi_url", for the rejects file
    model_version: str | None
    shown: tuple[str, ...] | None  # the model labels the line says the curator saw
    reviewer: str
    reviewed_at: datetime
    remove: tuple[str, ...]
    add: tuple[str, ...]
    accept: bool


Row = tuple[int, str, dict | None, str | None]


def _rows(path: Path, fmt: str) -> Iterator[Row]:
    """(line, raw text, row or None, error or None) for each non-blank line or CSV row."""
    if fmt == "csv":
        yield from _csv_rows(path)
        return
    with open(path, "rb") as handle:
        for number, raw, whole in bounded_lines(handle, MAX_LINE_BYTES):
            if number == 1 and raw.startswith(_BOM.encode()):
                raw = raw[len(_BOM.encode()) :]  # Notepad's and Excel's UTF-8 mark
            if not raw.strip():
                continue
            shown = raw[:MAX_SHOWN].decode("utf-8", errors="backslashreplace").rstrip("\r\n")
            if not whole:
                yield number, shown, None, f"line longer than {MAX_LINE_BYTES} bytes"
                continue
            try:
                row = decode_line(raw)  # the import's decoder: one key twice is an error too
            except LineError as exc:
                yield number, shown, None, str(exc)
                continue
            if not isinstance(row, dict):
                yield number, shown, None, "a decision must be a JSON object"
                continue
            yield number, shown, row, None


class _Recorder:
    """The physical lines the CSV reader consumed for the current row (bounded)."""

    def __init__(self, handle):
        self.handle, self.text, self.size = handle, [], 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.handle)
        if self.size < MAX_SHOWN:
            self.text.append(line[: MAX_SHOWN - self.size])
            self.size += len(self.text[-1])
        return line

    def take(self) -> str:
        text, self.text, self.size = "".join(self.text), [], 0
        return text.rstrip("\r\n")


def _header(reader, path: Path) -> list[str]:
    try:
        names = [name.strip() for name in next(reader)]
    except StopIteration:
        names = []
    except csv.Error as exc:
        raise ReviewError(f"{path}: the header row is not valid CSV: {exc}") from None
    if "paper_id" not in names:
        raise ReviewError(f"{path}: a review CSV needs a header row with 'paper_id'")
    twice = sorted({name for name in names if name and names.count(name) > 1})
    if twice:
        raise ReviewError(
            f"{path}: the header names {', '.join(map(repr, twice[:5]))} more than once; "
            "which column holds the decision is unclear: keep one of each"
        )
    return names


def _csv_rows(path: Path) -> Iterator[Row]:
    # utf-8-sig reads past a BOM; strict makes a stray quote an error, not a swallowed row.
    with open(path, encoding="utf-8-sig", newline="") as handle:
        recorder = _Recorder(handle)
        reader = csv.reader(recorder, strict=True)
        names = _header(reader, path)
        recorder.take()
        end = reader.line_num
        while True:
            start = end + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                end = reader.line_num
                where = f"line {start}" if end <= start else f"lines {start}-{end}"
                error = f"not valid CSV ({where}: {exc}): a quote left open?"
                yield start, recorder.take(), None, error
                continue
            end, shown = reader.line_num, recorder.take()
            if not any(cell.strip() for cell in cells):
                continue
            if end > start:
                error = (
                    f"a row over lines {start}-{end}: a quote left open swallows the rows "
                    "after it (a decision row lies on one line)"
                )
                yield start, shown, None, error
            elif len(cells) > len(names):
                yield start, shown, None, f"{len(cells)} cells, the header has {len(names)}"
            else:
                yield start, shown, dict(zip(names, cells, strict=False)), None


def _known(field: str, value: list[str], taxonomy: Taxonomy) -> tuple[str, ...]:
    if len(value) > len(taxonomy):
        raise DecisionError(field, f"has {len(value)} labels; the taxonomy has {len(taxonomy)}")
    unknown = taxonomy.unknown(value)
    if unknown:
        shown = [repr(label)[:60] for label in sorted(set(unknown))[:5]]
        raise DecisionError(field, f"unknown label ids [{', '.join(shown)}]")
    return tuple(dict.fromkeys(value))


def _label_list(row: Mapping, field: str, taxonomy: Taxonomy) -> tuple[str, ...]:
    value = row.get(field)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [item for item in _SPLIT.split(value) if item]
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise DecisionError(field, "must be a list of label ids (CSV: 'id; id')")
    return _known(field, value, taxonomy)


def _shown(row: Mapping, taxonomy: Taxonomy) -> tuple[str, ...] | None:
    """The model labels the queue showed: its JSONL list of {label, ...} or ids, or its
    CSV cell "id (name) 0.970; id (name) 0.500"; None when the line does not carry them."""
    value = row.get("model_labels")
    if value is None:
        return None
    if isinstance(value, str):
        parts = [part.strip().lstrip("'") for part in value.split(";")]
        value = [part.split("(")[0].split()[0] for part in parts if part.split()]
    if isinstance(value, list):
        value = [item.get("label") if isinstance(item, dict) else item for item in value]
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise DecisionError("model_labels", "must be the queue's list of model labels")
    return _known("model_labels", value, taxonomy)


def _accept(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise DecisionError("accept", f"must be true or false, not {repr(value)[:40]}")


def _paper_id(value: Any) -> int:
    if isinstance(value, str) and _ID.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        shown = _safe(repr(value)[:40])
        raise DecisionError("paper_id", f"must be a positive integer in ASCII digits, not {shown}")
    return value


def _safe(text: str) -> str:
    """Text for a message: lone surrogates escaped, so the message itself can be written."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _doi(row: Mapping) -> tuple[str | None, str]:
    """(the DOI the line names, the field it came from): `doi` and/or `doi_url`, agreeing."""
    found: dict[str, str] = {}
    for name in ("doi", "doi_url"):
        text = _text(row, name, 500)
        if text is not None:
            try:
                found[name] = normalise_doi(text)
            except PaperError as error:
                raise DecisionError(name, str(error).removeprefix("field 'doi' ")) from None
    if len(set(found.values())) > 1:
        raise DecisionError("doi_url", f"names {found['doi_url']!r} but doi is {found['doi']!r}")
    return next(iter(found.values()), None), next(iter(found), "doi")


def _text(row: Mapping, field: str, limit: int = MAX_REVIEWER) -> str | None:
    """The field's stripped text: printable, storable (no lone surrogate), bounded."""
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise DecisionError(field, f"must be a string, not {type(value).__name__}")
    value = value.strip()
    if len(value) > limit or any(ord(ch) < 32 or 0xD800 <= ord(ch) < 0xE000 for ch in value):
        raise DecisionError(field, f"must be at most {limit} printable characters of UTF-8")
    return value


def _version(row: Mapping) -> str | None:
    text = _text(row, "model_version", 100)
    if text is None:
        return None
    try:
        return check_version(text)
    except VersionNameError as error:
        raise DecisionError("model_version", str(error)) from None


def _when(value: str | None, now: datetime) -> datetime:
    if value is None:
        return now
    try:
        return parse_instant(value, now=now)
    except InstantError as error:
        raise DecisionError("reviewed_at", str(error)) from None


def parse_decision(
    line: int, row: Mapping, taxonomy: Taxonomy, reviewer: str | None, now: datetime
) -> Draft | None:
    """The decision on one line, None when the line holds no decision yet."""
    paper_id = _paper_id(row.get("paper_id"))
    accept, remove = _accept(row.get("accept")), _label_list(row, "remove", taxonomy)
    add = _label_list(row, "add", taxonomy)
    if not (accept or remove or add):
        return None
    doi, doi_field = _doi(row)
    who = _text(row, "reviewer") or reviewer
    if who is None:
        raise DecisionError("reviewer", "is missing (or give --reviewer)")
    return Draft(
        line=line,
        paper_id=paper_id,
        doi=doi,
        doi_field=doi_field,
        model_version=_version(row),
        shown=_shown(row, taxonomy),
        reviewer=who,
        reviewed_at=_when(_text(row, "reviewed_at", 64), now),
        remove=remove,
        add=add,
        accept=accept,
    )


def _check_identity(draft: Draft, facts: reviews.PaperFacts) -> None:
    """The line's DOI is the paper's: an id alone could name any paper in the store."""
    if draft.doi is None and facts.doi:
        raise DecisionError(
            "doi", f"is missing: keep the queue's doi or doi_url, paper {draft.paper_id} has one"
        )
    if draft.doi is not None and draft.doi != (facts.doi or "").lower():
        shown = repr(draft.doi)[:80]
        raise DecisionError(draft.doi_field, f"{shown} is not the DOI of paper {draft.paper_id}")


def _seen(draft: Draft, queued: dict[str, list[str]]) -> tuple[str | None, tuple[str, ...]]:
    """(model version, labels) the curator saw: the line's, else what the queue sent."""
    pid, version = draft.paper_id, draft.model_version
    if version is None and len(queued) > 1:
        raise DecisionError(
            "model_version",
            f"is missing and paper {pid} was queued with models {sorted(queued)}: keep the queue's",
        )
    if version is None and queued:
        version = next(iter(queued))
    if version not in queued:
        model = f" with model {version!r}" if version else ""
        raise DecisionError(
            "paper_id", f"paper {pid} was never queued for review{model} (petal review queue)"
        )
    recorded = queued[version]
    if draft.shown is not None:
        if recorded and set(recorded) != set(draft.shown):
            raise DecisionError(
                "model_labels",
                f"{list(draft.shown)} are not the labels the queue sent for paper {pid} "
                f"with model {version!r} ({recorded})",
            )
        return version, draft.shown
    if not recorded:
        raise DecisionError(
            "model_labels", f"is missing: keep the queue's (the labels paper {pid} was shown with)"
        )
    return version, tuple(recorded)


def resolve(
    draft: Draft,
    facts: reviews.PaperFacts | None,
    taxonomy: Taxonomy,
    queued: dict[str, list[str]] | None = None,
) -> reviews.ReviewDecision:
    """The paper's new curator labels from a draft and what the store holds about the paper.

    `queued`: model version -> labels `petal review queue` sent for the paper.
    """
    if facts is None:
        raise DecisionError("paper_id", f"no paper {draft.paper_id} in the store")
    _check_identity(draft, facts)
    named = draft.model_version
    if named is not None and named not in facts.model_labels:
        raise DecisionError(
            "model_version", f"paper {draft.paper_id} has no labels from model {named!r}"
        )
    version, shown = _seen(draft, queued or {})
    model = facts.model_labels.get(version)
    if model is None:
        raise DecisionError(
            "model_version", f"paper {draft.paper_id} has no labels from model {version!r}"
        )
    if set(model) != set(shown):
        raise DecisionError(
            "model_labels",
            f"paper {draft.paper_id}'s labels from model {version!r} are now {sorted(model)}, "
            f"not the {sorted(shown)} shown: queue it again",
        )
    shown = [label for label in taxonomy.ids if label in set(shown)]
    extra = [label for label in draft.remove if label not in shown]
    if extra:
        raise DecisionError("remove", f"{extra[:5]} are not among the model's labels {shown}")
    kept = [label for label in shown if label not in draft.remove] + list(draft.add)
    labels = taxonomy.close_upwards(kept)
    implied = [label for label in draft.remove if label in labels]
    if implied:
        raise DecisionError("remove", f"{implied[:5]} stay implied by a kept label's ancestry")
    if not labels:
        raise DecisionError("remove", "leaves the paper without labels; add the right ones")
    return reviews.ReviewDecision(
        paper_id=draft.paper_id,
        reviewer=draft.reviewer,
        reviewed_at=draft.reviewed_at,
        model_version=version,
        accepted=draft.accept,
        removed=draft.remove,
        added=draft.add,
        labels=tuple(labels),
        shown=tuple(shown),
    )


@dataclass
class DecisionFile:
    decisions: list[tuple[int, reviews.ReviewDecision]]
    rejects: RejectSink  # every rejection streamed; `.count`, `.first`
    skipped: int  # lines without a decision yet
    shown: dict[int, str] = field(default_factory=dict)  # line -> the record as read

    @property
    def rejections(self) -> list[Rejection]:
        """The first rejections by line (all of them in the sink's rejects file)."""
        return self.rejects.first


def _drafts(path: Path, fmt: str, taxonomy, reviewer, now, sink) -> tuple[list, int]:
    drafts, first_line, skipped = [], {}, 0
    for line, shown, row, error in _rows(path, fmt):
        if error is not None:
            sink.add(Rejection(line, None, error, shown), READING)
            continue
        try:
            draft = parse_decision(line, row, taxonomy, reviewer, now)
        except DecisionError as exc:
            sink.add(Rejection(line, exc.field, _safe(str(exc)), shown), READING)
            continue
        if draft is None:
            skipped += 1
        elif draft.paper_id in first_line:
            reason = f"paper {draft.paper_id} was decided on line {first_line[draft.paper_id]}"
            sink.add(Rejection(line, "paper_id", reason, shown), READING)
        elif len(drafts) >= MAX_DECISIONS:
            sink.add(Rejection(line, None, f"over {MAX_DECISIONS} decisions", shown), READING)
        else:
            first_line[draft.paper_id] = line
            drafts.append((draft, shown))
    return drafts, skipped


def read_decisions(
    conn: psycopg2.extensions.connection,
    path: Path,
    taxonomy: Taxonomy,
    *,
    fmt: str | None = None,
    reviewer: str | None = None,
    now: datetime | None = None,
    rejects: RejectSink | None = None,
) -> DecisionFile:
    """Every decision in the file checked against the store; bad lines go to `rejects`
    (default: a sink that only counts and keeps the first ones)."""
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    now = now or datetime.now(UTC)
    try:  # --reviewer goes into every line without one: held to the same rule, once
        reviewer = _text({"reviewer": reviewer}, "reviewer")
    except DecisionError as error:
        raise ReviewError(f"--reviewer {_safe(str(error))}") from None
    sink = rejects if rejects is not None else RejectSink(None)
    drafts, skipped = _drafts(path, fmt, taxonomy, reviewer, now, sink)
    ids = [d.paper_id for d, _ in drafts]
    queued = reviews.queued_labels(conn, ids)
    versions = {d.model_version for d, _ in drafts} - {None}
    versions |= {version for sent in queued.values() for version in sent}
    facts = reviews.paper_facts(conn, ids, sorted(versions))
    decisions = []
    for draft, shown in drafts:
        try:
            pid = draft.paper_id
            decision = resolve(draft, facts.get(pid), taxonomy, queued.get(pid, {}))
        except DecisionError as exc:
            sink.add(Rejection(draft.line, exc.field, _safe(str(exc)), shown), CHECKING)
            continue
        decisions.append((draft.line, decision))
    return DecisionFile(decisions, sink, skipped, {d.line: shown for d, shown in drafts})


def apply_decisions(
    conn: psycopg2.extensions.connection,
    read: DecisionFile,
    source: str,
    *,
    override: bool,
    commit: bool = True,
) -> reviews.ApplyReport:
    """Apply the file's decisions; the store's refusals join the file's rejects by line."""
    decided = [d for _, d in read.decisions]
    report = reviews.apply_reviews(conn, decided, source, override=override, commit=commit)
    line_of = {decision.paper_id: line for line, decision in read.decisions}
    for refusal in report.refused:
        line = line_of[refusal.paper_id]
        read.rejects.add(Rejection(line, refusal.field, refusal.reason, read.shown[line]), STORING)
    return report
