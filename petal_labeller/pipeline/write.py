"""Write one run's labels and its run row in a single transaction.

Either the labels, the "labelled by this version" marks and the finished run
row all commit, or nothing does: a crash mid-write leaves the database as it
was before the run, and writing the same results again changes nothing. The
checked rows are streamed into that one transaction with COPY, so a run of any
size is written without holding its labels in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from petal_labeller.pipeline.validate import CheckedOutput
from petal_labeller.store import labels, runs
from petal_labeller.store.connection import connect


@dataclass(frozen=True)
class RunSummary:
    """The counts of one labelling run, as recorded in `labelling_runs`."""

    run_id: str
    model_version: str
    papers_selected: int
    papers_labelled: int
    papers_rejected: int
    labels_written: int


def write_labels(
    run_id: str,
    checked: CheckedOutput,
    model_version: str,
    *,
    papers_selected: int,
    airflow_run_id: str | None = None,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
    database_url: str | None = None,
) -> RunSummary:
    """Upsert the checked labels and record the run; one commit for both."""
    conn = connect(database_url)
    try:
        with conn:  # commits on success, rolls everything back on any error
            runs.start_run(
                conn,
                run_id,
                model_version,
                interval_start=interval_start,
                interval_end=interval_end,
                airflow_run_id=airflow_run_id,
                commit=False,
            )
            report = labels.upsert_model_labels(
                conn,
                checked.rows,
                model_version,
                run_id,
                paper_ids=checked.labelled,
                commit=False,
            )
            summary = RunSummary(
                run_id=run_id,
                model_version=model_version,
                papers_selected=papers_selected,
                papers_labelled=len(checked.labelled),
                papers_rejected=len(checked.rejected),
                labels_written=report.written,
            )
            runs.finish_run(
                conn,
                run_id,
                "success",
                papers_selected=summary.papers_selected,
                papers_labelled=summary.papers_labelled,
                labels_written=summary.labels_written,
                papers_rejected=summary.papers_rejected,
                error=_rejection_note(checked),
                commit=False,
            )
    finally:
        conn.close()
    return summary


def record_failed_run(
    run_id: str,
    model_version: str,
    error: str,
    *,
    airflow_run_id: str | None = None,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
    database_url: str | None = None,
) -> None:
    """Record a run that wrote no labels, unless it already finished successfully."""
    conn = connect(database_url)
    try:
        with conn:
            existing = runs.get_run(conn, run_id)
            if existing is not None and existing.status == "success":
                return
            runs.start_run(
                conn,
                run_id,
                model_version,
                interval_start=interval_start,
                interval_end=interval_end,
                airflow_run_id=airflow_run_id,
                commit=False,
            )
            runs.finish_run(conn, run_id, "failed", error=error[:2000], commit=False)
    finally:
        conn.close()


def _rejection_note(checked: CheckedOutput) -> str | None:
    if not checked.rejected:
        return None
    first = next(iter(checked.rejected))
    return (
        f"{len(checked.rejected)} paper(s) rejected by the model, e.g. paper "
        f"{first['paper_id']}: {first['error']}"
    )
