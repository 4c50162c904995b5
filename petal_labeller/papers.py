"""The paper record and the validation of the import format (one JSON object a line).

A line becomes a `Paper` or a `Rejection` naming the line, the field and the
reason, so one bad record is quarantined while the rest of the file goes on.
Format: `doi` (str|null), `title` (str, required), `abstract` (str|null),
`venue` (list of str, str, or null), `url` (str|null), `labels` (list of
taxonomy ids, optional), `ingested_at` (ISO 8601, optional: when the paper
entered PeTaL, which decides the daily run that labels it). Other keys (e.g.
the pipeline's `paper_id`) are ignored.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from petal_labeller.instants import InstantError, parse_instant
from petal_labeller.taxonomy import Taxonomy

# A DOI is "10.<registrant>/<suffix>" (DOI Handbook 2.2); suffixes may hold any
# printable character, so only the prefix shape and the absence of spaces are checked.
_DOI_SHAPE = re.compile(r"^10\.\d{4,9}(\.\d+)*/\S+$")
_DOI_PREFIXES = re.compile(r"^(https?://(dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)


#: Letters and symbols that render as blank space: Hangul fillers, the braille blank.
_BLANK_GRAPHEMES = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible(text: str) -> bool:
    """Whether the text shows anything: a letter, digit, punctuation mark or symbol.

    Format characters (Cf: zero-width spaces and joiners, BOM, soft hyphen, bidi
    marks, tags), separators (Z*), controls (Cc), marks with no base (M*), private
    use, unassigned and surrogate code points, and letters that render blank show
    nothing, alone or together.
    """
    return any(unicodedata.category(ch)[0] in "LNPS" and ch not in _BLANK_GRAPHEMES for ch in text)


class PaperError(ValueError):
    """One field of one record is invalid; `field` names it for reports.

    The message reads "field 'title' must be ..."; `text` replaces it whole where
    the fault is not one field's ("fields 'title' and 'abstract' are both empty").
    """

    def __init__(self, field: str, message: str, *, text: str | None = None):
        super().__init__(text or f"field {field!r} {message}")
        self.field = field


class LineError(ValueError):
    """A line of JSON Lines is not one decodable JSON value; the message says why."""


class _RepeatedKey(ValueError):
    """A JSON object names one key twice; json.loads would keep the last silently."""


def _once_each(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record: dict[str, object] = {}
    for key, value in pairs:
        if key in record:
            raise _RepeatedKey(key)
        record[key] = value
    return record


def bounded_lines(handle: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, at most `max_bytes` of the line, whether that is all of it) for each
    line of a binary file, split on b"\\n" only.

    Iterating a file reads a whole line into memory however long it is, and
    str.splitlines() also breaks at U+2028 inside a paper's text; a hostile file can be
    one line of gigabytes, so lines are read in bounded pieces, and the rest of a long
    line is skipped only if the caller reads on. The one reader of every JSON Lines
    file that comes from outside (staged input and model output, held-out output,
    decision files, Ground Truth manifests).
    """
    number = 0
    while raw := handle.readline(max_bytes + 1):
        number += 1
        whole = len(raw) <= max_bytes or raw.endswith(b"\n")
        yield number, raw if whole else raw[:max_bytes], whole
        tail = raw
        while not whole and tail and not tail.endswith(b"\n"):
            tail = handle.readline(max_bytes + 1)


def json_objects(
    handle: BinaryIO, max_bytes: int
) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    """(line number, object or that line's LineError) for each non-blank line, read
    by `bounded_lines` and decoded by `decode_line`."""
    for number, raw, whole in bounded_lines(handle, max_bytes):
        if not whole:
            yield number, LineError(f"longer than {max_bytes} bytes")
            continue
        if not raw.strip():
            continue
        try:
            record = decode_line(raw)
        except LineError as exc:
            yield number, exc
            continue
        yield number, record if isinstance(record, dict) else LineError("expected a JSON object")


def decode_line(raw: bytes) -> object:
    """One JSON Lines line as a Python value; LineError for bad UTF-8, JSON, nesting or
    an object naming a key twice (a duplicated field must not silently win).

    The only place lines are decoded (import, training data, inference), so every
    path refuses the same lines with the same reason. Nesting deep enough to
    exhaust the decoder's recursion is that line's error, never the batch's.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(
            f"not valid UTF-8 text: {exc.reason} (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_once_each)
    except _RepeatedKey as exc:
        raise LineError(
            f"not usable JSON: key {exc.args[0][:60]!r} appears twice (which value holds?)"
        ) from None
    except json.JSONDecodeError as exc:
        raise LineError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise LineError("not usable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit limit
        raise LineError(f"not usable JSON: {exc}") from None


@dataclass(frozen=True)
class Paper:
    """A validated paper; `labels` is None when the record carried no `labels` key."""

    title: str
    doi: str | None = None
    abstract: str | None = None
    venue: tuple[str, ...] = ()
    url: str | None = None
    labels: tuple[str, ...] | None = None
    #: When the paper entered PeTaL (optional; the import stamps new papers otherwise).
    ingested_at: datetime | None = None

    @property
    def key(self) -> str:
        """Identity within the store: the DOI when known, else the case-folded title."""
        return f"doi:{self.doi}" if self.doi else f"title:{self.title.casefold()}"

    def to_record(self) -> dict[str, object]:
        """The import-format dict (labels only when present)."""
        record: dict[str, object] = {
            "doi": self.doi,
            "title": self.title,
            "abstract": self.abstract,
            "venue": list(self.venue),
            "url": self.url,
        }
        if self.labels is not None:
            record["labels"] = list(self.labels)
        if self.ingested_at is not None:
            record["ingested_at"] = self.ingested_at.isoformat()
        return record


@dataclass(frozen=True)
class Rejection:
    """A record that was not imported: where it was, which field, and why."""

    line: int
    field: str | None
    reason: str
    raw: str

    def to_record(self) -> dict[str, object]:
        return {"line": self.line, "field": self.field, "reason": self.reason, "record": self.raw}


def normalise_doi(value: str) -> str:
    """Lower-case and strip resolver prefixes (`https://doi.org/`, `doi:`); raise if not a DOI."""
    doi = _DOI_PREFIXES.sub("", value.strip()).strip().lower()
    if not _DOI_SHAPE.match(doi):
        raise PaperError("doi", f"is not a DOI: {value!r} (expected 10.<registrant>/<suffix>)")
    return doi


def text_field(record: Mapping[str, object], field: str, *, required: bool = False) -> str | None:
    """The field's stripped text, None when absent or blank; PaperError if not storable text."""
    value = record.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise PaperError(field, "is missing or empty")
        return None
    if not isinstance(value, str):
        raise PaperError(field, f"must be a string or null, not {type(value).__name__}")
    value = _storable(field, value.strip())
    if required and not has_visible(value):
        raise PaperError(field, "has no visible character (only invisible or blank ones)")
    return value


def _storable(field: str, value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate (JSON "\ud800") is not
    # UTF-8: both would fail the whole batch later, so they are caught per record.
    if "\x00" in value:
        raise PaperError(field, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PaperError(field, "is not valid UTF-8 text (lone surrogate escape)") from None
    return value


def venue_field(record: Mapping[str, object]) -> tuple[str, ...]:
    """The venue names, deduplicated; PaperError unless a string, a list of strings or null."""
    value = record.get("venue")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PaperError("venue", "must be a string, a list of strings or null")
    names = [_storable("venue", item.strip()) for item in value]
    return tuple(dict.fromkeys(name for name in names if name))


def _labels(record: Mapping[str, object], taxonomy: Taxonomy | None) -> tuple[str, ...] | None:
    if "labels" not in record or record["labels"] is None:
        return None
    value = record["labels"]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PaperError("labels", "must be a list of label id strings")
    if taxonomy is not None:
        unknown = taxonomy.unknown(value)
        if unknown:
            raise PaperError("labels", f"unknown label ids {sorted(set(unknown))}")
    return tuple(dict.fromkeys(value))


def ingested_at_field(record: Mapping[str, object]) -> datetime | None:
    """Optional ISO 8601 `ingested_at` (naive = UTC), not before 1900 nor in the future."""
    value = text_field(record, "ingested_at")
    if value is None:
        return None
    try:
        return parse_instant(value)
    except InstantError as error:
        raise PaperError("ingested_at", str(error)) from None


def parse_paper(record: object, taxonomy: Taxonomy | None = None) -> Paper:
    """Validate one decoded JSON record; raise `PaperError` naming the first bad field."""
    if not isinstance(record, dict):
        shown = type(record).__name__
        raise PaperError("record", "", text=f"record must be a JSON object, not {shown}")
    doi = text_field(record, "doi")
    return Paper(
        title=text_field(record, "title", required=True) or "",
        doi=normalise_doi(doi) if doi else None,
        abstract=text_field(record, "abstract"),
        venue=venue_field(record),
        url=text_field(record, "url"),
        labels=_labels(record, taxonomy),
        ingested_at=ingested_at_field(record),
    )


def read_papers(
    path: str | Path, taxonomy: Taxonomy | None = None
) -> Iterator[tuple[int, Paper | Rejection]]:
    """Yield `(line_number, Paper or Rejection)` for every non-blank line of a JSONL file.

    The file is read as bytes line by line, so invalid UTF-8 or broken JSON on
    one line rejects only that line. The second and later copies of a paper
    (same DOI, or same title when there is no DOI) are rejected as duplicates.
    """
    seen: dict[str, int] = {}
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            shown = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
            try:
                record = decode_line(raw)
            except LineError as exc:
                yield number, Rejection(number, None, str(exc), shown)
                continue
            try:
                paper = parse_paper(record, taxonomy)
            except PaperError as exc:
                yield number, Rejection(number, exc.field, str(exc), shown)
                continue
            first = seen.setdefault(paper.key, number)
            if first != number:
                field = "doi" if paper.doi else "title"
                yield (
                    number,
                    Rejection(number, field, f"duplicate of the paper on line {first}", shown),
                )
                continue
            yield number, paper
