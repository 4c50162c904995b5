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

The paper's curator labels become: the model's labels, minus `remove`, plus
`add`, closed upwards. A line with none of the three is not reviewed yet and is
skipped. Each bad line is rejected with its number, field and reason, like an
import; `reviewed_at` (ISO 8601) is optional and defaults to now.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions

from petal_labeller.instants import InstantError, parse_instant
from petal_labeller.papers import PaperError, Rejection, normalise_doi
from petal_labeller.review.errors import ReviewError
from petal_labeller.store import reviews
from petal_labeller.taxonomy import Taxonomy

MAX_DECISIONS = 100_000
MAX_LINE_BYTES = 1 << 20
MAX_REVIEWER = 200
_TRUE = {"true", "yes", "y", "1", "x", "accept", "accepted"}
_FALSE = {"false", "no", "n", "0", ""}
_SPLIT = re.compile(r"[;,\s]+")
#: ASCII digits only: str.isdigit() and int() also read "١٢" and "²" as numbers.
_ID = re.compile(r"[0-9]{1,19}")


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
    reviewer: str
    reviewed_at: datetime
    remove: tuple[str, ...]
    add: tuple[str, ...]
    accept: bool


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, str, dict | None, str | None]]:
    """(line, raw text, row or None, error or None) for each non-blank line or CSV row."""
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "paper_id" not in reader.fieldnames:
                raise ReviewError(f"{path}: a review CSV needs a header row with 'paper_id'")
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield reader.line_num, "", None, f"not valid CSV: {exc}"
                    continue
                if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    shown = json.dumps(row, ensure_ascii=False)[:2000]
                    yield reader.line_num, shown, row, None
        return
    with open(path, "rb") as handle:
        for number, raw, whole in _bounded_lines(handle):
            if not raw.strip():
                continue
            shown = raw[:2000].decode("utf-8", errors="backslashreplace").rstrip("\r\n")
            if not whole:
                yield number, shown, None, f"line longer than {MAX_LINE_BYTES} bytes"
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                yield number, shown, None, f"not valid JSON: {exc}"
                continue
            if not isinstance(row, dict):
                yield number, shown, None, "a decision must be a JSON object"
                continue
            yield number, shown, row, None


def _bounded_lines(handle) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, at most MAX_LINE_BYTES of the line, whether that is all of it).

    Iterating a file reads a whole line into memory however long it is; a
    hostile file could be one line of gigabytes, so lines are read in bounded pieces.
    """
    number = 0
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        whole = len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n")
        tail = raw
        while not whole and tail and not tail.endswith(b"\n"):
            tail = handle.readline(MAX_LINE_BYTES + 1)  # skip the rest of the long line
        yield number, raw, whole


def _label_list(row: Mapping, field: str, taxonomy: Taxonomy) -> tuple[str, ...]:
    value = row.get(field)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [item for item in _SPLIT.split(value) if item]
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise DecisionError(field, "must be a list of label ids (CSV: 'id; id')")
    if len(value) > len(taxonomy):
        raise DecisionError(field, f"has {len(value)} labels; the taxonomy has {len(taxonomy)}")
    unknown = taxonomy.unknown(value)
    if unknown:
        raise DecisionError(field, f"unknown label ids {sorted(set(unknown))[:5]}")
    return tuple(dict.fromkeys(value))


def _accept(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise DecisionError("accept", f"must be true or false, not {value!r}")


def _paper_id(value: Any) -> int:
    if isinstance(value, str) and _ID.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        shown = repr(value)[:40]
        raise DecisionError("paper_id", f"must be a positive integer in ASCII digits, not {shown}")
    return value


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
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise DecisionError(field, f"must be a string, not {type(value).__name__}")
    value = value.strip()
    if len(value) > limit or any(ord(ch) < 32 for ch in value):
        raise DecisionError(field, f"must be at most {limit} printable characters")
    return value


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
        model_version=_text(row, "model_version"),
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


def resolve(
    draft: Draft, facts: reviews.PaperFacts | None, version: str | None, taxonomy: Taxonomy
) -> reviews.ReviewDecision:
    """The paper's new curator labels from a draft and what the store holds about the paper."""
    if facts is None:
        raise DecisionError("paper_id", f"no paper {draft.paper_id} in the store")
    _check_identity(draft, facts)
    model = facts.model_labels.get(version) if version else None
    if model is None:
        raise DecisionError(
            "model_version", f"paper {draft.paper_id} has no labels from model {version!r}"
        )
    extra = [label for label in draft.remove if label not in model]
    if extra:
        raise DecisionError("remove", f"{extra[:5]} are not among the model's labels {model}")
    kept = [label for label in model if label not in draft.remove] + list(draft.add)
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
    )


@dataclass
class DecisionFile:
    decisions: list[tuple[int, reviews.ReviewDecision]]
    rejections: list[Rejection]
    skipped: int  # lines without a decision yet
    shown: dict[int, str] = field(default_factory=dict)  # line -> the record as read


def _drafts(path: Path, fmt: str, taxonomy, reviewer, now, rejections) -> list[tuple[Draft, str]]:
    drafts, first_line, skipped = [], {}, 0
    for line, shown, row, error in _rows(path, fmt):
        if error is not None:
            rejections.append(Rejection(line, None, error, shown))
            continue
        try:
            draft = parse_decision(line, row, taxonomy, reviewer, now)
        except DecisionError as exc:
            rejections.append(Rejection(line, exc.field, str(exc), shown))
            continue
        if draft is None:
            skipped += 1
        elif draft.paper_id in first_line:
            reason = f"paper {draft.paper_id} was decided on line {first_line[draft.paper_id]}"
            rejections.append(Rejection(line, "paper_id", reason, shown))
        elif len(drafts) >= MAX_DECISIONS:
            rejections.append(Rejection(line, None, f"over {MAX_DECISIONS} decisions", shown))
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
) -> DecisionFile:
    """Every decision in the file checked against the store; bad lines become rejections."""
    from petal_labeller.store.models import production_model

    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    now = now or datetime.now(UTC)
    rejections: list[Rejection] = []
    drafts, skipped = _drafts(path, fmt, taxonomy, reviewer, now, rejections)
    production = production_model(conn)
    default = production.version if production else None
    versions = {d.model_version or default for d, _ in drafts} - {None}
    facts = reviews.paper_facts(conn, [d.paper_id for d, _ in drafts], sorted(versions))
    decisions = []
    for draft, shown in drafts:
        try:
            version = draft.model_version or default
            decision = resolve(draft, facts.get(draft.paper_id), version, taxonomy)
        except DecisionError as exc:
            rejections.append(Rejection(draft.line, exc.field, str(exc), shown))
            continue
        decisions.append((draft.line, decision))
    rejections.sort(key=lambda r: r.line)
    return DecisionFile(decisions, rejections, skipped, {d.line: shown for d, shown in drafts})


def apply_decisions(
    conn: psycopg2.extensions.connection, read: DecisionFile, source: str, *, override: bool
) -> tuple[reviews.ApplyReport, list[Rejection]]:
    """Apply the file's decisions; every rejection, the store's refusals included, by line."""
    report = reviews.apply_reviews(conn, [d for _, d in read.decisions], source, override=override)
    line_of = {decision.paper_id: line for line, decision in read.decisions}
    refused = [
        Rejection(line_of[r.paper_id], r.field, r.reason, read.shown[line_of[r.paper_id]])
        for r in report.refused
    ]
    return report, sorted(read.rejections + refused, key=lambda r: r.line)
