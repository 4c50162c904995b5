"""Write one run's labels and its run row in a single transaction.

Either the labels, the "labelled by this version" marks and the finished run
row all commit, or nothing does: a crash mid-write leaves the database as it
was before the run, and writing the same results again changes nothing. The
checked rows are streamed into that one transaction with COPY, so a run of any
size is written without holding its labels in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

import psycopg2.extensions

from petal_labeller.pipeline.validate import CheckedOutput
from petal_labeller.store import labels, runs
from petal_labeller.store.connection import connect


@dataclass(frozen=True)
class RunRecord:
    """Which `labelling_runs` row a write goes to, and where: the fields every write of a
    run repeats (a success, an empty run, a failure), passed down whole.

    `model_version` is None for a run that failed before it resolved a model.
    """

    run_id: str
    model_version: str | None
    airflow_run_id: str | None = None
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    started_at: datetime | None = None
    dry_run: bool = False
    database_url: str | None = None

    def start(self, conn: psycopg2.extensions.connection) -> None:
        """Open (or reopen) the row in the caller's transaction."""
        runs.start_run(
            conn, self.run_id, self.model_version, interval_start=self.interval_start,
            interval_end=self.interval_end, airflow_run_id=self.airflow_run_id,
            started_at=self.started_at, dry_run=self.dry_run, commit=False,
        )  # fmt: skip


@dataclass(frozen=True)
class RunSummary:
    """The counts of one labelling run, as recorded in `labelling_runs`.

    `dry_run` summaries were checked but not written (`labels_proposed` is what
    they would have written); `quarantine` is the file holding the papers the model
    rejected, if any.
    """

    run_id: str
    model_version: str
    papers_selected: int
    papers_labelled: int
    papers_rejected: int
    labels_written: int
    dry_run: bool = False
    quarantine: str | None = None
    labels_proposed: int = 0
    papers_left: int = 0  # of the window, by a cap asked for at a terminal
    #: Papers whose labels changed (new ones included); the rest kept what they had.
    papers_changed: int = 0

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> RunSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@contextmanager
def _run_transaction(database_url: str | None) -> Iterator[psycopg2.extensions.connection]:
    """One connection, one transaction: commits on success, rolls back on any error."""
    conn = connect(database_url)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def write_labels(run: RunRecord, checked: CheckedOutput, *, papers_selected: int) -> RunSummary:
    """Upsert the checked labels and record the run; one commit for both.

    A dry run writes no label: its row, marked `dry_run`, says how many it would
    have written (`labels_proposed`), so it leaves a trace beyond its log.
    """
    if run.model_version is None:
        raise ValueError(f"run {run.run_id}: labels need the model version that wrote them")
    dry_run = run.dry_run
    with _run_transaction(run.database_url) as conn:
        run.start(conn)
        written = changed = 0
        if not dry_run:
            report = labels.upsert_model_labels(
                conn, checked.rows, run.model_version, run.run_id, paper_ids=checked.labelled,
                commit=False,
            )  # fmt: skip
            written, changed = report.written, report.changed
        summary = RunSummary(
            run_id=run.run_id,
            model_version=run.model_version,
            papers_selected=papers_selected,
            papers_labelled=len(checked.labelled),
            papers_rejected=len(checked.rejected),
            labels_written=written,
            dry_run=dry_run,
            labels_proposed=len(checked.rows) if dry_run else 0,
            papers_changed=changed,
        )
        _finish_success(
            conn,
            summary,
            error=_rejection_note(checked),
            labels_proposed=summary.labels_proposed if dry_run else None,
        )
    return summary


def _finish_success(
    conn, summary: RunSummary, *, error: str | None = None, labels_proposed: int | None = None
) -> None:
    """Mark the run's row a success with the summary's counts, in the caller's transaction."""
    runs.finish_run(
        conn,
        summary.run_id,
        "success",
        papers_selected=summary.papers_selected,
        papers_labelled=summary.papers_labelled,
        labels_written=summary.labels_written,
        papers_rejected=summary.papers_rejected,
        labels_proposed=labels_proposed,
        papers_changed=None if summary.dry_run else summary.papers_changed,
        error=error,
        commit=False,
    )


def note_partial_run(run_id: str, note: str, database_url: str | None = None) -> None:
    """Keep a run a success but say on its row what it left (a cap asked for at a terminal)."""
    with _run_transaction(database_url) as conn:
        runs.finish_run(conn, run_id, "success", error=note, commit=False)


def fail_finished_run(run_id: str, error: str, database_url: str | None = None) -> None:
    """Turn a recorded run into a failure (its labels stay: they are right), e.g. one that
    left papers of its window unlabelled (`pipeline.coverage`)."""
    with _run_transaction(database_url) as conn:
        runs.finish_run(conn, run_id, "failed", error=error, commit=False)


def record_empty_run(run: RunRecord) -> RunSummary:
    """Record a run that found nothing to label: a finished success with zero counts,
    so "succeeded doing nothing" shows as such, not as a missing run (a dry run too).

    A re-run of a run that already succeeded (a cleared task, a backfill with
    `--reprocess-behavior`) finds its window done: its row keeps the counts of the
    try that labelled it, since those labels carry this run id.
    """
    with _run_transaction(run.database_url) as conn:
        earlier = runs.get_run(conn, run.run_id)
        if earlier is not None and earlier.status == "success":
            return RunSummary(
                run.run_id,
                earlier.model_version or run.model_version,
                earlier.papers_selected or 0,
                earlier.papers_labelled or 0,
                earlier.papers_rejected or 0,
                earlier.labels_written or 0,
                papers_changed=earlier.papers_changed or 0,
            )
        run.start(conn)
        summary = RunSummary(run.run_id, run.model_version, 0, 0, 0, 0, dry_run=run.dry_run)
        _finish_success(conn, summary, labels_proposed=0 if run.dry_run else None)
    return summary


def record_failed_run(run: RunRecord, error: str) -> bool:
    """Record a run that wrote no labels (error redacted), unless it already ended."""
    with _run_transaction(run.database_url) as conn:
        return runs.fail_run(
            conn, run.run_id, run.model_version, error, interval_start=run.interval_start,
            interval_end=run.interval_end, airflow_run_id=run.airflow_run_id,
            started_at=run.started_at, commit=False,
        )  # fmt: skip


def _rejection_note(checked: CheckedOutput) -> str | None:
    if not checked.rejected:
        return None
    first = next(iter(checked.rejected))
    return (
        f"{len(checked.rejected)} paper(s) rejected by the model, e.g. paper "
        f"{first['paper_id']}: {first['error']}"
    )
