"""Papers in the database: import from JSONL, stream the ones a model has not labelled.

API:
- `import_papers(conn, path, taxonomy, rejects_path=None, *, source=None,
  ingested_at=None, commit=True) -> ImportReport`
  validates every line (`petal_labeller.papers.read_papers`), streams bad ones to
  `rejects_path` (JSONL: line, field, reason, record; `petal_labeller.rejects`) and
  imports the good ones in one transaction. A paper already stored (same DOI, or same title without
  DOI) is updated in place and keeps its `ingested_at` (a new paper gets its record's
  `ingested_at`, else the `ingested_at` argument, else now, so a historic batch can be
  loaded into its days); a record with `labels`
  replaces that paper's curator labels, one without leaves them alone.
- `pending_papers(conn, since, until, model_version=None, limit=None) -> Iterator[dict]`
  streams papers with `since <= ingested_at < until` that `model_version` (default:
  the production model) has not labelled: dicts with paper_id, doi, title,
  abstract, venue (list), url, ingested_at.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path

import psycopg2.extensions
from psycopg2.extras import execute_values

from petal_labeller.instants import storable_instant
from petal_labeller.outputs import refuse_inputs_as_outputs
from petal_labeller.papers import Paper, Rejection, read_papers
from petal_labeller.rejects import RejectSink
from petal_labeller.store.unit import write_unit
from petal_labeller.taxonomy import Taxonomy

#: Rows per round trip when writing papers, and per fetch when streaming them.
BATCH_SIZE = 1000


@dataclass
class ImportReport:
    """What one import did; every rejection is in the rejects file when one was given,
    `rejections` holds the first `rejects.KEEP` by line (memory flat in bad lines)."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    curator_labels: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.inserted + self.updated


#: migrations/0001's `papers.identity_key`, over an `input` row. Duplicates are found by
#: the database's own case folding: Python's differs (`"İ".casefold()` keeps a combining
#: dot that PostgreSQL's lower() drops), and two rows with one key in one INSERT ... ON
#: CONFLICT statement would fail the whole import instead of rejecting the second.
IDENTITY_SQL = (
    "CASE WHEN input.doi IS NOT NULL THEN 'doi:' || input.doi "
    "ELSE 'title:' || md5(lower(input.title)) END"
)


def _batches(items: Iterable[tuple[int, Paper]], size: int) -> Iterator[list[tuple[int, Paper]]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def import_papers(
    conn: psycopg2.extensions.connection,
    path: str | Path,
    taxonomy: Taxonomy,
    rejects_path: str | Path | None = None,
    *,
    source: str | None = None,
    ingested_at: datetime | None = None,
    commit: bool = True,
) -> ImportReport:
    """Import a JSONL file of papers; bad records are reported, never imported."""
    # Checked before anything is opened: opening the rejects file truncates it.
    refuse_inputs_as_outputs([("--rejects", rejects_path)], [("the input", path)])
    report = ImportReport()
    source = source or f"import:{Path(path).name}"

    def good_papers(sink: RejectSink) -> Iterator[tuple[int, Paper]]:
        for number, item in read_papers(path, taxonomy):
            report.read += 1
            if isinstance(item, Rejection):
                sink.add(item, 0)
            else:
                yield number, item

    seen: dict[str, int] = {}  # identity key -> line of its first paper in this file
    # Two passes find rejections, each in line order: the reader, and _unique's duplicates.
    with RejectSink(rejects_path, passes=2) as sink, write_unit(conn, commit), conn.cursor() as cur:
        for batch in _batches(good_papers(sink), BATCH_SIZE):
            unique = _unique(cur, batch, seen, lambda item: sink.add(item, 1))
            _write_batch(cur, unique, source, report, ingested_at)
    report.rejected, report.rejections = sink.count, sink.first
    return report


def _unique(cur, batch: list[tuple[int, Paper]], seen: dict[str, int], reject) -> list:
    """The batch without papers whose database identity an earlier line already has."""
    keys = execute_values(
        cur,
        f"SELECT {IDENTITY_SQL} FROM (VALUES %s) AS input (n, doi, title) ORDER BY n",
        [(n, paper.doi, paper.title) for n, (_, paper) in enumerate(batch)],
        template="(%s, %s::text, %s::text)",
        page_size=len(batch),
        fetch=True,
    )
    unique = []
    for (number, paper), (key,) in zip(batch, keys, strict=True):
        first = seen.setdefault(key, number)
        if first == number:
            unique.append((number, paper))
            continue
        record = json.dumps(paper.to_record(), ensure_ascii=False)
        field = "doi" if paper.doi else "title"
        reject(Rejection(number, field, f"duplicate of the paper on line {first}", record))
    return unique


#: Upsert one batch of papers; returns (row number, paper id, inserted?) per paper. The row
#: number travels with each record so returned ids map back to papers whatever order
#: RETURNING uses; xmax = 0 only for rows this statement inserted.
_UPSERT_PAPERS_SQL = f"""
WITH input (n, doi, title, abstract, venue, url, source, ingested_at) AS (VALUES %s),
written AS (
    INSERT INTO papers (doi, title, abstract, venue, url, source, ingested_at)
    SELECT doi, title, abstract, venue, url, source, coalesce(ingested_at, now())
    FROM input ORDER BY n
    ON CONFLICT (identity_key) DO UPDATE SET title = EXCLUDED.title,
        abstract = EXCLUDED.abstract, venue = EXCLUDED.venue, url = EXCLUDED.url
    RETURNING id, (xmax = 0) AS inserted, identity_key)
SELECT input.n, written.id, written.inserted
FROM written JOIN input ON written.identity_key = {IDENTITY_SQL}
ORDER BY input.n"""
_UPSERT_PAPERS_TEMPLATE = (
    "(%s, %s::text, %s::text, %s::text, %s::text[], %s::text, %s::text, %s::timestamptz)"
)


def _write_batch(
    cur,
    batch: list[tuple[int, Paper]],
    source: str,
    report: ImportReport,
    default: datetime | None = None,
) -> None:
    """Upsert the batch's papers, then replace the curator labels of those that carry any."""
    if not batch:
        return
    papers = [paper for _, paper in batch]
    values = [
        (n, p.doi, p.title, p.abstract, list(p.venue), p.url, source, p.ingested_at or default)
        for n, p in enumerate(papers)
    ]
    rows = execute_values(
        cur,
        _UPSERT_PAPERS_SQL,
        values,
        template=_UPSERT_PAPERS_TEMPLATE,
        page_size=len(papers),
        fetch=True,
    )
    report.inserted += sum(1 for _, _, inserted in rows if inserted)
    report.updated += sum(1 for _, _, inserted in rows if not inserted)
    labelled = [(paper_id, papers[n]) for n, paper_id, _ in rows if papers[n].labels is not None]
    report.curator_labels += _replace_curator_labels(cur, labelled)


def _replace_curator_labels(cur, labelled: list[tuple[int, Paper]]) -> int:
    """A record with `labels` replaces its paper's curator labels; returns rows written."""
    if not labelled:
        return 0
    cur.execute(
        "DELETE FROM paper_labels WHERE origin = 'curator' AND paper_id = ANY(%s)",
        ([paper_id for paper_id, _ in labelled],),
    )
    label_rows = [(paper_id, label) for paper_id, paper in labelled for label in paper.labels or ()]
    if label_rows:
        execute_values(
            cur,
            "INSERT INTO paper_labels (paper_id, label_id, origin) VALUES %s",
            label_rows,
            template="(%s, %s, 'curator')",
            page_size=BATCH_SIZE * 10,
        )
    return len(label_rows)


def _utc(moment: datetime | str) -> datetime:
    """An interval bound (ISO text or datetime, naive = UTC) in UTC; InstantError if unstorable."""
    return storable_instant(moment)


def pending_papers(
    conn: psycopg2.extensions.connection,
    since: datetime | str,
    until: datetime | str,
    model_version: str | None = None,
    limit: int | None = None,
) -> Iterator[dict]:
    """Stream papers ingested in `[since, until)` not yet labelled by `model_version`
    (a paper a curator called not biomimicry relevant never is).

    Uses a server-side cursor, so a backlog of any size is read `BATCH_SIZE`
    rows at a time. Consume it before committing on the same connection (a
    commit closes the cursor). With no `model_version` the production model is
    used; with no production model every paper in the window is pending.
    """
    if model_version is None:
        from petal_labeller.store.models import production_model

        production = production_model(conn)
        model_version = production.version if production else None
    cursor = conn.cursor(name=f"pending_{uuid.uuid4().hex[:12]}")
    cursor.itersize = BATCH_SIZE
    try:
        cursor.execute(
            """SELECT p.id, p.doi, p.title, p.abstract, p.venue, p.url, p.ingested_at
               FROM papers p
               WHERE p.ingested_at >= %(since)s AND p.ingested_at < %(until)s
                 AND p.irrelevant_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM paper_labelling l
                                 WHERE l.paper_id = p.id AND l.model_version = %(version)s)
               ORDER BY p.ingested_at, p.id
               LIMIT %(limit)s""",
            {"since": _utc(since), "until": _utc(until), "version": model_version, "limit": limit},
        )
        for paper_id, doi, title, abstract, venue, url, ingested_at in cursor:
            yield {
                "paper_id": paper_id,
                "doi": doi,
                "title": title,
                "abstract": abstract,
                "venue": list(venue),
                "url": url,
                "ingested_at": ingested_at,
            }
    finally:
        if not cursor.closed and not conn.closed:
            cursor.close()


def count_pending(
    conn: psycopg2.extensions.connection,
    since: datetime | str,
    until: datetime | str,
    model_version: str,
    excluding: Collection[int] = (),
) -> int:
    """How many papers ingested in `[since, until)` `model_version` has not labelled,
    leaving out `excluding` (papers a run set aside and reported)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT count(*) FROM papers p
               WHERE p.ingested_at >= %(since)s AND p.ingested_at < %(until)s
                 AND NOT (p.id = ANY(%(excluding)s::bigint[])) AND p.irrelevant_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM paper_labelling l
                                 WHERE l.paper_id = p.id AND l.model_version = %(version)s)""",
            {
                "since": _utc(since),
                "until": _utc(until),
                "version": model_version,
                "excluding": list(excluding),
            },
        )
        return cur.fetchone()[0]
