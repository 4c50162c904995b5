"""Labelling runs: one row per labelling of a data interval, with its counts and outcome.

API:
- `start_run(conn, run_id, model_version, *, interval_start=None, interval_end=None,
  airflow_run_id=None, commit=True) -> LabellingRun`: status `running`. Starting
  the same `run_id` again (a retried task) resets it instead of failing.
- `finish_run(conn, run_id, status="success", *, papers_selected=None,
  papers_labelled=None, labels_written=None, papers_rejected=None, error=None,
  commit=True) -> LabellingRun`: status `success` or `failed`.
- `get_run(conn, run_id)`, `list_runs(conn, limit=20)` (newest first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg2.extensions

from petal_labeller.store.unit import StoreError, write_unit

STATUSES = ("running", "success", "failed")
_COLUMNS = (
    "run_id, airflow_run_id, model_version, interval_start, interval_end, status, "
    "papers_selected, papers_labelled, labels_written, papers_rejected, error, "
    "started_at, finished_at"
)


@dataclass(frozen=True)
class LabellingRun:
    run_id: str
    airflow_run_id: str | None
    model_version: str
    interval_start: datetime | None
    interval_end: datetime | None
    status: str
    papers_selected: int | None
    papers_labelled: int | None
    labels_written: int | None
    papers_rejected: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None


def _get(cur, run_id: str) -> LabellingRun | None:
    cur.execute(f"SELECT {_COLUMNS} FROM labelling_runs WHERE run_id = %s", (run_id,))
    row = cur.fetchone()
    return LabellingRun(*row) if row else None


def start_run(
    conn: psycopg2.extensions.connection,
    run_id: str,
    model_version: str,
    *,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
    airflow_run_id: str | None = None,
    commit: bool = True,
) -> LabellingRun:
    """Record that labelling began (or began again) for `run_id`."""
    with write_unit(conn, commit), conn.cursor() as cur:
        cur.execute("SELECT 1 FROM model_versions WHERE version = %s", (model_version,))
        if cur.fetchone() is None:
            raise StoreError(f"run {run_id!r}: model version {model_version!r} is not registered")
        cur.execute(
            """INSERT INTO labelling_runs
                   (run_id, airflow_run_id, model_version, interval_start, interval_end)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (run_id) DO UPDATE SET airflow_run_id = EXCLUDED.airflow_run_id,
                   model_version = EXCLUDED.model_version,
                   interval_start = EXCLUDED.interval_start, interval_end = EXCLUDED.interval_end,
                   status = 'running', papers_selected = NULL, papers_labelled = NULL,
                   labels_written = NULL, papers_rejected = NULL, error = NULL,
                   started_at = now(), finished_at = NULL""",
            (run_id, airflow_run_id, model_version, interval_start, interval_end),
        )
        return _get(cur, run_id)  # type: ignore[return-value]


def finish_run(
    conn: psycopg2.extensions.connection,
    run_id: str,
    status: str = "success",
    *,
    papers_selected: int | None = None,
    papers_labelled: int | None = None,
    labels_written: int | None = None,
    papers_rejected: int | None = None,
    error: str | None = None,
    commit: bool = True,
) -> LabellingRun:
    """Record the outcome and counts of a run; counts left as None keep their stored value."""
    if status not in ("success", "failed"):
        raise StoreError(
            f"run {run_id!r}: field 'status' must be success or failed, not {status!r}"
        )
    with write_unit(conn, commit), conn.cursor() as cur:
        cur.execute(
            """UPDATE labelling_runs SET status = %s, error = %s, finished_at = now(),
                   papers_selected = coalesce(%s, papers_selected),
                   papers_labelled = coalesce(%s, papers_labelled),
                   labels_written = coalesce(%s, labels_written),
                   papers_rejected = coalesce(%s, papers_rejected)
               WHERE run_id = %s""",
            (
                status,
                error,
                papers_selected,
                papers_labelled,
                labels_written,
                papers_rejected,
                run_id,
            ),
        )
        if cur.rowcount == 0:
            raise StoreError(f"run {run_id!r} was never started")
        return _get(cur, run_id)  # type: ignore[return-value]


def get_run(conn: psycopg2.extensions.connection, run_id: str) -> LabellingRun | None:
    with conn.cursor() as cur:
        return _get(cur, run_id)


def list_runs(conn: psycopg2.extensions.connection, limit: int = 20) -> list[LabellingRun]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM labelling_runs ORDER BY started_at DESC LIMIT %s", (limit,)
        )
        return [LabellingRun(*row) for row in cur.fetchall()]
