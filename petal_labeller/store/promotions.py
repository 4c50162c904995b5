"""What a promotion decision reads and writes: a sample of one model's labelled papers
(for a candidate's dry relabel) and the decision on a candidate (who, when, why)."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from psycopg2.extras import Json

from petal_labeller.store.unit import StoreError, write_unit

_SAMPLE = """
SELECT p.id, p.doi, p.title, p.abstract, p.venue, p.url,
       COALESCE(array_agg(l.label_id ORDER BY l.label_id)
                FILTER (WHERE l.label_id IS NOT NULL), '{}')
FROM paper_labelling pl
JOIN papers p ON p.id = pl.paper_id
LEFT JOIN paper_labels l ON l.paper_id = pl.paper_id
     AND l.model_version = coalesce(pl.labels_version, pl.model_version)
     AND l.origin = 'model'
WHERE pl.model_version = %(version)s
GROUP BY p.id
-- A stable pseudo-random sample: the same papers for every candidate compared.
ORDER BY md5(p.id::text), p.id
LIMIT %(limit)s
"""


def labelled_sample(
    conn: psycopg2.extensions.connection, version: str, limit: int
) -> tuple[int, list[tuple[dict[str, Any], list[str]]]]:
    """(papers `version` has labelled, up to `limit` of them as (record, chosen labels))."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM paper_labelling WHERE model_version = %s", (version,))
        (total,) = cur.fetchone()
        cur.execute(_SAMPLE, {"version": version, "limit": limit})
        rows = cur.fetchall()
    fields = ("paper_id", "doi", "title", "abstract", "venue", "url")
    return total, [(dict(zip(fields, row[:6], strict=True)), list(row[6])) for row in rows]


#: How a version's promotion was decided (model_versions.decision, migration 0010).
DECISIONS = ("first", "auto", "approved", "rejected", "timed_out")


def record_decision(
    conn: psycopg2.extensions.connection,
    version: str,
    decision: str,
    *,
    decided_by: str | None = None,
    comment: str | None = None,
    comparison: dict[str, Any] | None = None,
    commit: bool = True,
) -> None:
    """Write the promotion decision onto the registered `version`'s row."""
    if decision not in DECISIONS:
        raise StoreError(f"decision {decision!r} is not one of {DECISIONS}")
    with write_unit(conn, commit), conn.cursor() as cur:
        cur.execute(
            """UPDATE model_versions SET decision = %s, decided_by = %s,
                   decision_comment = %s, decided_at = now(), comparison = %s
               WHERE version = %s""",
            (decision, decided_by, comment, Json(comparison) if comparison else None, version),
        )
        if cur.rowcount != 1:
            raise StoreError(f"model version {version!r} is not registered")


def decision_of(conn: psycopg2.extensions.connection, version: str) -> dict[str, Any] | None:
    """The recorded decision on `version` (None if it has none or is not registered)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT decision, decided_by, decision_comment, decided_at, comparison
               FROM model_versions WHERE version = %s AND decision IS NOT NULL""",
            (version,),
        )
        row = cur.fetchone()
    fields = ("decision", "decided_by", "comment", "decided_at", "comparison")
    return dict(zip(fields, row, strict=True)) if row else None


#: The DAG whose runs relabel the store after a promotion (its run ids start with it).
RELABEL_DAG = "petal_relabel_papers"


def promotion_history(conn: psycopg2.extensions.connection) -> dict[str, dict[str, Any]]:
    """Per registered version: its promotion decision (who, comment, when, the gate's
    comparison) and what its relabel runs changed (successful, not dry: papers labelled,
    papers whose labels changed, runs), in one query for the PeTaL page."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.version, m.decision, m.decided_by, m.decision_comment, m.decided_at,
                      m.comparison, r.runs, r.papers, r.changed
               FROM model_versions m
               LEFT JOIN LATERAL (
                   SELECT count(*) AS runs, sum(papers_labelled) AS papers,
                          sum(papers_changed) AS changed
                   FROM labelling_runs
                   WHERE model_version = m.version AND status = 'success' AND NOT dry_run
                     AND starts_with(run_id, %s)) r ON true""",
            (RELABEL_DAG + "/",),
        )
        rows = cur.fetchall()
    fields = ("decision", "decided_by", "comment", "decided_at", "comparison")
    return {
        row[0]: {
            **dict(zip(fields, row[1:6], strict=True)),
            "relabel": dict(zip(("runs", "papers", "changed"), row[6:], strict=True))
            if row[6]
            else None,
        }
        for row in rows
    }
