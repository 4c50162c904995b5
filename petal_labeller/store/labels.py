"""Model labels in, every label out.

API:
- `upsert_model_labels(conn, rows, model_version, run_id=None, *, paper_ids=(),
  commit=True) -> UpsertReport`: rows are `(paper_id, label_id, score)`. One
  transaction: the rows (and `paper_ids`) are streamed with COPY into a temporary
  table, so any iterable works at any size, then merged with one
  `INSERT ... ON CONFLICT DO UPDATE`; for every paper in the batch (those in
  `rows` plus `paper_ids`, which names papers the model gave no label) the model
  labels of the same version that are not in the new set are deleted, and the
  paper is marked labelled by that version in `paper_labelling` (so it is no
  longer pending; the mark carries the run id and label count). Curator labels
  are never touched. Writers of one model version are serialised by an advisory
  lock. Writing the same batch again changes nothing; any bad row (unknown
  paper, label, version or run; score outside [0, 1]) raises `StoreError` and
  leaves every table as it was. Only what changes is written: a paper whose new
  labels equal those another version stored for it (same set, every score within
  `SCORE_TOLERANCE`) gets its mark only, naming that version in `labels_version`,
  and no label rows (a relabel after a promotion rewrites only the changed papers);
  the report says how many papers changed.
- `model_labels(conn, model_version=None, paper_id=None) -> list[tuple]`:
  `(paper_id, label_id, score, model_version, run_id)` sorted.
- `export_papers(conn, *, curated_only=False, where=ExportFilter()) -> Iterator[dict]`:
  papers in the import format plus `paper_id`, `labels` (curator ids, taxonomy order)
  and `predicted` (`[{label, score, model_version, run_id}]`), streamed through a
  server-side cursor; `where` narrows it to a run, a model version, an ingestion
  window [since, until), one paper, at most `limit` papers.
- `run_papers(conn, run_id, limit, offset)`, `count_run_papers(conn, run_id)`: the papers
  whose labels a run wrote (still its own: a later run of the same version takes them
  over), with those labels.
- `paper_view(conn, paper_id) -> dict | None`: one paper with its curator labels and
  every model's labels, scores, versions and runs.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extensions

from petal_labeller.store.unit import StoreError, one_line, write_unit

#: Rows fetched per round trip when exporting.
EXPORT_BATCH = 1000
#: Model label rows one paper's view reads at most (131 labels x many versions is plenty).
PAPER_VIEW_LABELS = 2000
#: Scores this close are the same score: half a unit in the 4th decimal, the precision
#: the PeTaL page, the review queue and the exports show. The one definition of
#: "changed beyond rounding" for a relabel (issue 26).
SCORE_TOLERANCE = 5e-5
#: Where a mark's labels are stored: its own version's rows, or those it carried over.
HOLDER = "coalesce(l.labels_version, l.model_version)"


@dataclass(frozen=True)
class UpsertReport:
    papers: int
    inserted: int
    updated: int
    deleted: int
    #: Papers whose labels differ from what they had (none before counts as changed).
    changed: int = 0
    #: Unchanged papers that kept another version's stored labels (no row written).
    carried: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated


def _copy_field(value: str) -> str:
    # COPY text format escapes: backslash first, then the separators.
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy_lines(rows: Iterable[tuple[int, str, float]]) -> Iterator[str]:
    for index, row in enumerate(rows):
        try:
            paper_id, label_id, score = row
            paper_id, score = int(paper_id), float(score)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"label row {index}: expected (paper_id, label_id, score), got {row!r}"
            ) from exc
        if not isinstance(label_id, str) or not label_id:
            raise StoreError(
                f"label row {index}: field 'label_id' must be a non-empty string, got {label_id!r}"
            )
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise StoreError(
                f"label row {index} (paper {paper_id}, {label_id}): "
                f"field 'score' {score} is not in [0, 1]"
            )
        yield f"{paper_id}\t{_copy_field(label_id)}\t{score!r}\n"


def _id_lines(paper_ids: Iterable[int]) -> Iterator[str]:
    for index, paper_id in enumerate(paper_ids):
        try:
            yield f"{int(paper_id)}\n"
        except (TypeError, ValueError) as exc:
            raise StoreError(f"paper id {index}: expected an integer, got {paper_id!r}") from exc


class _LinesReader(io.TextIOBase):
    """A read-only file over a line generator: COPY streams rows without building one big string.

    psycopg2's copy_expert wants a file object; no stdlib class adapts an iterator.
    """

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self._buffer = ""
        #: The exception a line raised: psycopg2 reports it only as a cancelled COPY.
        self.error: Exception | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        want = size if size is not None and size >= 0 else math.inf
        parts = [self._buffer]
        length = len(self._buffer)
        try:
            for line in self._lines:
                parts.append(line)
                length += len(line)
                if length >= want:
                    break
        except Exception as exc:
            self.error = exc
            raise
        text = "".join(parts)
        if want is math.inf:
            self._buffer = ""
            return text
        self._buffer = text[int(want) :]
        return text[: int(want)]


def upsert_model_labels(
    conn: psycopg2.extensions.connection,
    rows: Iterable[tuple[int, str, float]],
    model_version: str,
    run_id: str | None = None,
    *,
    paper_ids: Iterable[int] = (),
    commit: bool = True,
) -> UpsertReport:
    """Replace the model labels of `model_version` for every paper in the batch; see module doc."""
    suffix = uuid.uuid4().hex[:12]
    incoming, batch = f"incoming_labels_{suffix}", f"batch_papers_{suffix}"
    same = f"same_papers_{suffix}"
    params = {"version": model_version, "run": run_id, "tolerance": SCORE_TOLERANCE}
    readers = (_LinesReader(_copy_lines(rows)), _LinesReader(_id_lines(paper_ids)))
    try:
        with write_unit(conn, commit), conn.cursor() as cur:
            _stage_incoming(cur, incoming, batch, readers)
            # Writers of one version take turns, so two runs never deadlock on shared papers.
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtext('petal-labels:' || %(version)s))", params
            )
            changed, carried = _find_unchanged(cur, incoming, batch, same, params)
            _mark_papers(cur, batch, same, params)
            deleted = _delete_stale_labels(cur, incoming, batch, params)
            inserted, updated, papers = _merge_labels(cur, incoming, batch, same, params)
            _store_uncertainty(cur, batch, params)
            cur.execute(f"DROP TABLE {incoming}, {batch}, {same}")
    except psycopg2.Error as exc:
        for reader in readers:
            if reader.error is not None:
                raise reader.error from None
        if isinstance(exc, psycopg2.IntegrityError | psycopg2.DataError):
            raise StoreError(
                f"model labels for version {model_version!r} not written: {one_line(exc)}"
            ) from exc
        raise
    return UpsertReport(
        papers=papers, inserted=inserted, updated=updated, deleted=deleted,
        changed=changed, carried=carried,
    )  # fmt: skip


def _stage_incoming(
    cur: psycopg2.extensions.cursor, incoming: str, batch: str, readers: tuple
) -> None:
    """COPY the rows and the batch's paper ids into analysed temporary tables."""
    # Papers named only in `paper_ids` (no label chosen) arrive as rows
    # without a label, so they join the batch with a count of 0.
    cur.execute(
        f"""CREATE TEMP TABLE {incoming}
                (paper_id bigint NOT NULL, label_id text, score real,
                 CHECK ((label_id IS NULL) = (score IS NULL)))
            ON COMMIT DROP"""
    )
    cur.copy_expert(f"COPY {incoming} FROM STDIN", readers[0])
    cur.copy_expert(f"COPY {incoming} (paper_id) FROM STDIN", readers[1])
    # Temporary tables are never auto-analysed; without statistics the
    # planner guesses badly on the joins below. The index keeps the stale-label
    # delete's anti-join fast even when paper_labels' own statistics are stale
    # (just after a large first write): a nested loop over the unindexed
    # incoming rows took over 15 minutes for 100,000 labels.
    cur.execute(
        f"""CREATE INDEX ON {incoming} (paper_id, label_id);
            ANALYZE {incoming};
            CREATE TEMP TABLE {batch} ON COMMIT DROP AS
                SELECT paper_id, count(DISTINCT label_id)::integer AS label_count
                FROM {incoming} GROUP BY paper_id;
            ANALYZE {batch};"""
    )


def _find_unchanged(
    cur: psycopg2.extensions.cursor, incoming: str, batch: str, same: str, params: dict
) -> tuple[int, int]:
    """Fill `same` with the batch papers whose new labels equal their stored ones, and the
    version holding those (`holder`); (papers changed, papers carried over).

    A paper's stored labels are this version's own if it labelled the paper already, else
    those of the version that labelled it last. Equal: the same label set, and every score
    within SCORE_TOLERANCE (scores are `real`; both sides are compared as stored).
    """
    # In steps over analysed temporary tables: a planner guessing from stale statistics
    # (just after a large write) must not nest loops over 100,000-row intermediates.
    cur.execute(
        f"""CREATE TEMP TABLE {same} ON COMMIT DROP AS
                SELECT DISTINCT ON (l.paper_id) l.paper_id, {HOLDER} AS holder
                FROM {batch} b JOIN paper_labelling l ON l.paper_id = b.paper_id
                ORDER BY l.paper_id, (l.model_version = %(version)s) DESC,
                         l.labelled_at DESC, l.model_version DESC;
            ANALYZE {same};
            DELETE FROM {same} AS s USING (
                SELECT DISTINCT coalesce(n.paper_id, o.paper_id) AS paper_id
                FROM (SELECT i.paper_id, i.label_id, max(i.score) AS score
                      FROM {incoming} i JOIN {same} p ON p.paper_id = i.paper_id
                      WHERE i.label_id IS NOT NULL GROUP BY i.paper_id, i.label_id) n
                FULL JOIN (SELECT pl.paper_id, pl.label_id, pl.score FROM {same} p
                           JOIN paper_labels pl ON pl.paper_id = p.paper_id
                            AND pl.origin = 'model' AND pl.model_version = p.holder) o
                       ON o.paper_id = n.paper_id AND o.label_id = n.label_id
                WHERE n.label_id IS NULL OR o.label_id IS NULL
                   OR abs(n.score::float8 - o.score::float8) > %(tolerance)s) d
            WHERE s.paper_id = d.paper_id;
            ANALYZE {same};
            SELECT (SELECT count(*) FROM {batch}) - count(*),
                   count(*) FILTER (WHERE holder <> %(version)s)
            FROM {same}""",
        params,
    )
    changed, carried = cur.fetchone()
    return changed, carried


def _mark_papers(cur: psycopg2.extensions.cursor, batch: str, same: str, params: dict) -> None:
    """Mark every paper of the batch as labelled by this version and run; an unchanged
    paper whose labels another version holds names that version (no rows of its own).

    Marked first: model labels reference this row (and it checks the paper,
    version and run exist).
    """
    cur.execute(
        f"""INSERT INTO paper_labelling
                (paper_id, model_version, run_id, label_count, labels_version)
            SELECT b.paper_id, %(version)s, %(run)s, b.label_count,
                   CASE WHEN s.holder <> %(version)s THEN s.holder END
            FROM {batch} b LEFT JOIN {same} s ON s.paper_id = b.paper_id
            ON CONFLICT (paper_id, model_version) DO UPDATE
            SET run_id = EXCLUDED.run_id, label_count = EXCLUDED.label_count,
                labels_version = EXCLUDED.labels_version, labelled_at = EXCLUDED.labelled_at
            WHERE (paper_labelling.run_id, paper_labelling.label_count,
                   paper_labelling.labels_version)
                  IS DISTINCT FROM (EXCLUDED.run_id, EXCLUDED.label_count,
                                    EXCLUDED.labels_version)""",
        params,
    )


def _delete_stale_labels(
    cur: psycopg2.extensions.cursor, incoming: str, batch: str, params: dict
) -> int:
    """Drop this version's labels of batch papers that the new rows no longer carry."""
    cur.execute(
        f"""DELETE FROM paper_labels AS pl USING {batch} AS b
            WHERE pl.paper_id = b.paper_id AND pl.origin = 'model'
              AND pl.model_version = %(version)s
              AND NOT EXISTS (
                  SELECT 1 FROM {incoming} AS i
                  WHERE i.paper_id = pl.paper_id AND i.label_id = pl.label_id)""",
        params,
    )
    return cur.rowcount


def _merge_labels(
    cur: psycopg2.extensions.cursor, incoming: str, batch: str, same: str, params: dict
) -> tuple[int, int, int]:
    """Insert new labels, update changed ones; (inserted, updated, papers in the batch)."""
    # Unchanged rows are skipped, so writing the same run twice is a no-op; papers
    # carried over from another version's rows get none.
    cur.execute(
        f"""WITH written AS (
                INSERT INTO paper_labels
                    (paper_id, label_id, origin, score, model_version, run_id)
                SELECT DISTINCT ON (paper_id, label_id)
                       paper_id, label_id, 'model', score, %(version)s, %(run)s
                FROM {incoming} i WHERE label_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM {same} s
                                  WHERE s.paper_id = i.paper_id AND s.holder <> %(version)s)
                ORDER BY paper_id, label_id, score DESC
                ON CONFLICT (paper_id, label_id, model_version) WHERE origin = 'model'
                DO UPDATE SET score = EXCLUDED.score, run_id = EXCLUDED.run_id,
                              labelled_at = EXCLUDED.labelled_at
                WHERE (paper_labels.score, paper_labels.run_id)
                      IS DISTINCT FROM (EXCLUDED.score, EXCLUDED.run_id)
                RETURNING (xmax = 0) AS inserted)
            SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
                   (SELECT count(*) FROM {batch})
            FROM written""",
        params,
    )
    return cur.fetchone()


def _score_marks(cur: psycopg2.extensions.cursor, marks: str, chosen: str) -> int:
    """Store the review uncertainty of the paper_labelling rows listed in the temporary
    table `marks`; how many changed.

    `model.uncertainty.paper_uncertainty` from the stored labels (the best path down the
    tree through the chosen labels, each step's confidence given its parent, doubt weighted
    1, 1/2, 1/4 by level; no label: 1), rounded to 4 places as the review queue ranks it,
    set-based over an analysed table of the chosen labels. Migration 0012 scored the rows
    written before it the same way.
    """
    cur.execute(
        f"""ANALYZE {marks};
            CREATE TEMP TABLE {chosen} ON COMMIT DROP AS
                SELECT l.paper_id, l.model_version, pl.label_id, pl.score::numeric AS s,
                       t.parent
                FROM {marks} l
                JOIN paper_labels pl ON pl.paper_id = l.paper_id AND pl.origin = 'model'
                    AND pl.model_version = coalesce(l.labels_version, l.model_version)
                JOIN taxonomy_labels t ON t.id = pl.label_id;
            ANALYZE {chosen};"""
    )
    cur.execute(
        f"""WITH l1 AS (
                SELECT DISTINCT ON (paper_id, model_version) paper_id, model_version,
                       label_id, s, least(1, s) AS c
                FROM {chosen} WHERE parent IS NULL
                ORDER BY paper_id, model_version, s DESC, label_id COLLATE "C" DESC),
            l2 AS (
                SELECT DISTINCT ON (c.paper_id, c.model_version) c.paper_id, c.model_version,
                       c.label_id, c.s, CASE WHEN p.s > 0 THEN least(1, c.s / p.s) ELSE 0 END AS c
                FROM {chosen} c JOIN l1 p ON p.paper_id = c.paper_id
                    AND p.model_version = c.model_version AND c.parent = p.label_id
                ORDER BY c.paper_id, c.model_version, c.s DESC, c.label_id COLLATE "C" DESC),
            l3 AS (
                SELECT DISTINCT ON (c.paper_id, c.model_version) c.paper_id, c.model_version,
                       CASE WHEN p.s > 0 THEN least(1, c.s / p.s) ELSE 0 END AS c
                FROM {chosen} c JOIN l2 p ON p.paper_id = c.paper_id
                    AND p.model_version = c.model_version AND c.parent = p.label_id
                ORDER BY c.paper_id, c.model_version, c.s DESC, c.label_id COLLATE "C" DESC),
            scored AS (
                SELECT l.paper_id, l.model_version,
                       round(CASE WHEN l1.paper_id IS NULL THEN 1
                             ELSE ((1 - l1.c) + coalesce(0.5 * (1 - l2.c), 0)
                                   + coalesce(0.25 * (1 - l3.c), 0))
                                  / (1 + CASE WHEN l2.paper_id IS NULL THEN 0 ELSE 0.5 END
                                       + CASE WHEN l3.paper_id IS NULL THEN 0 ELSE 0.25 END)
                             END, 4) AS u
                FROM {marks} l
                LEFT JOIN l1 ON l1.paper_id = l.paper_id AND l1.model_version = l.model_version
                LEFT JOIN l2 ON l2.paper_id = l.paper_id AND l2.model_version = l.model_version
                LEFT JOIN l3 ON l3.paper_id = l.paper_id AND l3.model_version = l.model_version)
            UPDATE paper_labelling l SET uncertainty = scored.u
            FROM scored WHERE scored.paper_id = l.paper_id
              AND scored.model_version = l.model_version
              AND l.uncertainty IS DISTINCT FROM scored.u"""
    )
    changed = cur.rowcount
    cur.execute(f"DROP TABLE {marks}, {chosen}")
    return changed


def _store_uncertainty(cur: psycopg2.extensions.cursor, batch: str, params: dict) -> None:
    """Score the batch's marks (for the PeTaL page's "Needs review", read by index)."""
    suffix = uuid.uuid4().hex[:12]
    marks, chosen = f"batch_marks_{suffix}", f"chosen_labels_{suffix}"
    cur.execute(
        f"""CREATE TEMP TABLE {marks} ON COMMIT DROP AS
                SELECT l.paper_id, l.model_version, l.labels_version FROM paper_labelling l
                JOIN {batch} b ON b.paper_id = l.paper_id WHERE l.model_version = %(version)s""",
        params,
    )
    _score_marks(cur, marks, chosen)


def refresh_uncertainty(conn: psycopg2.extensions.connection, *, commit: bool = True) -> int:
    """Score every mark again (labels written without `upsert_model_labels`, e.g. by a
    bulk load, or after the taxonomy's tree changed); the marks whose score changed."""
    suffix = uuid.uuid4().hex[:12]
    marks, chosen = f"all_marks_{suffix}", f"chosen_labels_{suffix}"
    with write_unit(conn, commit), conn.cursor() as cur:
        cur.execute(
            f"""CREATE TEMP TABLE {marks} ON COMMIT DROP AS
                    SELECT paper_id, model_version, labels_version FROM paper_labelling"""
        )
        return _score_marks(cur, marks, chosen)


def model_labels(
    conn: psycopg2.extensions.connection,
    model_version: str | None = None,
    paper_id: int | None = None,
) -> list[tuple[int, str, float, str, str | None]]:
    """Stored model labels as `(paper_id, label_id, score, model_version, run_id)`, sorted."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT paper_id, label_id, score, model_version, run_id FROM paper_labels
               WHERE origin = 'model'
                 AND (%(version)s::text IS NULL OR model_version = %(version)s)
                 AND (%(paper)s::bigint IS NULL OR paper_id = %(paper)s)
               ORDER BY paper_id, model_version, label_id""",
            {"version": model_version, "paper": paper_id},
        )
        return cur.fetchall()


def curator_labels(conn: psycopg2.extensions.connection, paper_id: int) -> list[str]:
    """A paper's curator label ids, in taxonomy order."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT pl.label_id FROM paper_labels pl JOIN taxonomy_labels t ON t.id = pl.label_id
               WHERE pl.paper_id = %s AND pl.origin = 'curator' ORDER BY t.position""",
            (paper_id,),
        )
        return [row[0] for row in cur.fetchall()]


@dataclass(frozen=True)
class ExportFilter:
    """Which papers an export writes; None means no restriction.

    `run_id` and `model_version` keep the papers that run or version labelled, and only
    its labels in `predicted`; `since`/`until` bound the ingestion time, [since, until).
    """

    run_id: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    paper_id: int | None = None
    limit: int | None = None


def export_papers(
    conn: psycopg2.extensions.connection,
    *,
    curated_only: bool = False,
    where: ExportFilter = ExportFilter(),  # frozen: safe to share
) -> Iterator[dict]:
    """Papers with their curator labels and model predictions, in paper id order."""
    cursor = conn.cursor(name=f"export_{uuid.uuid4().hex[:12]}")
    cursor.itersize = EXPORT_BATCH
    params = {
        "curated_only": curated_only,
        "run": where.run_id,
        "version": where.model_version,
        "since": where.since,
        "until": where.until,
        "paper": where.paper_id,
        "limit": where.limit,
    }
    try:
        cursor.execute(_EXPORT_SQL, params)
        for paper_id, doi, title, abstract, venue, url, labels, predicted in cursor:
            yield {
                "paper_id": paper_id,
                "doi": doi,
                "title": title,
                "abstract": abstract,
                "venue": list(venue),
                "url": url,
                "labels": list(labels),
                "predicted": predicted,
            }
    finally:
        if not cursor.closed and not conn.closed:
            cursor.close()


# Each filter is "parameter IS NULL OR condition", so one statement serves every export.
_EXPORT_SQL = """
    SELECT p.id, p.doi, p.title, p.abstract, p.venue, p.url,
           coalesce(curated.ids, '{}'), coalesce(predicted.items, '[]')
    FROM papers p
    LEFT JOIN LATERAL (
        SELECT array_agg(pl.label_id ORDER BY t.position) AS ids
        FROM paper_labels pl JOIN taxonomy_labels t ON t.id = pl.label_id
        WHERE pl.paper_id = p.id AND pl.origin = 'curator') curated ON true
    LEFT JOIN LATERAL (
        -- Through each version's mark: a version that carried another's labels over
        -- (an unchanged relabel) lists them as its own; run_id is the run that wrote them.
        SELECT json_agg(json_build_object('label', pl.label_id, 'score', pl.score,
                                          'model_version', l.model_version,
                                          'run_id', pl.run_id)
                        ORDER BY l.model_version, pl.score DESC, pl.label_id) AS items
        FROM paper_labelling l
        JOIN paper_labels pl ON pl.paper_id = l.paper_id AND pl.origin = 'model'
                            AND pl.model_version = coalesce(l.labels_version, l.model_version)
        WHERE l.paper_id = p.id
          AND (%(version)s::text IS NULL OR l.model_version = %(version)s)
          AND (%(run)s::text IS NULL OR l.run_id = %(run)s)) predicted ON true
    WHERE (NOT %(curated_only)s OR curated.ids IS NOT NULL)
      AND (%(paper)s::bigint IS NULL OR p.id = %(paper)s)
      AND (%(since)s::timestamptz IS NULL OR p.ingested_at >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR p.ingested_at < %(until)s)
      AND (%(run)s::text IS NULL OR EXISTS (
          SELECT 1 FROM paper_labelling l WHERE l.paper_id = p.id AND l.run_id = %(run)s))
      AND (%(version)s::text IS NULL OR EXISTS (
          SELECT 1 FROM paper_labelling l
          WHERE l.paper_id = p.id AND l.model_version = %(version)s))
    ORDER BY p.id
    LIMIT %(limit)s"""


def count_run_papers(conn: psycopg2.extensions.connection, run_id: str) -> int:
    """How many papers still carry the labels `run_id` wrote (0 labels included)."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM paper_labelling WHERE run_id = %s", (run_id,))
        return cur.fetchone()[0]


def run_papers(
    conn: psycopg2.extensions.connection, run_id: str, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """A page of the papers `run_id` labelled, in paper id order, each with its labels
    from that run (best first), or the ones it kept (`carried_from`: the version whose
    stored labels it found unchanged): `{paper_id, title, doi, label_count, labelled_at,
    labels, carried_from}`."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT p.id, p.title, p.doi, l.label_count, l.labelled_at,
                      coalesce(written.items, '[]'), l.labels_version
               FROM paper_labelling l JOIN papers p ON p.id = l.paper_id
               LEFT JOIN LATERAL (
                   SELECT json_agg(json_build_object('label', pl.label_id, 'name', t.name,
                                                     'score', pl.score)
                                   ORDER BY pl.score DESC, pl.label_id) AS items
                   FROM paper_labels pl JOIN taxonomy_labels t ON t.id = pl.label_id
                   WHERE pl.paper_id = l.paper_id AND pl.origin = 'model'
                     AND pl.model_version = coalesce(l.labels_version, l.model_version)
               ) written ON true
               WHERE l.run_id = %s ORDER BY p.id LIMIT %s OFFSET %s""",
            (run_id, limit, offset),
        )
        names = ("paper_id", "title", "doi", "label_count", "labelled_at", "labels", "carried_from")
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _dicts(cur: psycopg2.extensions.cursor, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [dict(zip(fields, row, strict=True)) for row in cur.fetchall()]


def paper_view(conn: psycopg2.extensions.connection, paper_id: int) -> dict[str, Any] | None:
    """One paper, its curator labels (who set them) and every model's labels with scores,
    versions and runs, plus which versions labelled it (a version may have chosen none)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, title, doi, abstract, venue, ingested_at FROM papers WHERE id = %s",
            (paper_id,),
        )
        found = _dicts(cur, ("paper_id", "title", "doi", "abstract", "venue", "ingested_at"))
        if not found:
            return None
        paper = found[0]
        paper["venue"] = list(paper["venue"])
        cur.execute(
            """SELECT pl.label_id, t.name, pl.curated_by, pl.labelled_at
               FROM paper_labels pl JOIN taxonomy_labels t ON t.id = pl.label_id
               WHERE pl.paper_id = %s AND pl.origin = 'curator' ORDER BY t.position""",
            (paper_id,),
        )
        paper["curator"] = _dicts(cur, ("label", "name", "curated_by", "labelled_at"))
        cur.execute(
            # Through the marks: a version that carried labels over shows them too.
            """SELECT pl.label_id, t.name, pl.score, l.model_version, pl.run_id, pl.labelled_at
               FROM paper_labelling l
               JOIN paper_labels pl ON pl.paper_id = l.paper_id AND pl.origin = 'model'
                    AND pl.model_version = coalesce(l.labels_version, l.model_version)
               JOIN taxonomy_labels t ON t.id = pl.label_id
               WHERE l.paper_id = %s
               ORDER BY l.model_version, pl.score DESC, pl.label_id LIMIT %s""",
            (paper_id, PAPER_VIEW_LABELS),
        )
        paper["model"] = _dicts(
            cur, ("label", "name", "score", "model_version", "run_id", "labelled_at")
        )
        cur.execute(
            """SELECT model_version, run_id, label_count, labelled_at, labels_version
               FROM paper_labelling
               WHERE paper_id = %s ORDER BY labelled_at DESC, model_version""",
            (paper_id,),
        )
        paper["labelled_by"] = _dicts(
            cur, ("model_version", "run_id", "label_count", "labelled_at", "carried_from")
        )
        # What the curators said or are saying (0014): a "not biomimicry relevant" mark,
        # and the task still open with them, if any.
        cur.execute("SELECT irrelevant_at, irrelevant_by FROM papers WHERE id = %s", (paper_id,))
        irrelevant_at, irrelevant_by = cur.fetchone()
        paper["irrelevant"] = (
            {"at": irrelevant_at, "by": irrelevant_by} if irrelevant_at is not None else None
        )
        cur.execute(
            "SELECT backend, batch, sent_at FROM review_tasks WHERE paper_id = %s "
            "AND status = 'sent'",
            (paper_id,),
        )
        paper["with_curators"] = next(iter(_dicts(cur, ("backend", "batch", "sent_at"))), None)
        return paper
