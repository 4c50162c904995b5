"""One labelling run: stage -> infer -> check -> write, typed, with no Airflow in it.

`label_window` runs a whole window on this machine (the `petal label` command,
the demo, the benchmarks). The Airflow tasks call the same steps one at a time
(`stage_run`, `infer_run`, `finish_run`, `record_failure`) and carry a
`StagedRun` between them in its XCom form, so both paths label a paper the same
way and record it in `labelling_runs` the same way.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import closing
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from petal_labeller.pipeline.workspace import (
    Workspace,
    publish_quarantine,
    quarantine_dir,
    workspace_for,
)
from petal_labeller.pipeline.write import (
    RunRecord,
    RunSummary,
    record_empty_run,
    record_failed_run,
    write_labels,
)

log = logging.getLogger(__name__)

__all__ = [
    "RunSummary",
    "StagedRun",
    "finish_empty_run",
    "finish_run",
    "infer_run",
    "label_window",
    "record_failure",
    "stage_run",
]


def _now() -> datetime:
    return datetime.now(UTC)


def new_run_id(prefix: str = "petal-label") -> str:
    """A unique id for a run outside Airflow, e.g. `petal-label/20261127T130000-1a2b3c4d`."""
    return f"{prefix}/{_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class StagedRun:
    """What `stage_run` selected and wrote: everything the later steps need.

    `run_id` names the `labelling_runs` row; `run_key` the workspace (and the S3
    prefix of the sagemaker backend). No bounds (`since`/`until` None) means
    every pending paper.
    """

    run_id: str
    run_key: str
    model_version: str
    artefact_uri: str
    count: int
    backend: str = "local"
    since: datetime | None = None
    until: datetime | None = None
    airflow_run_id: str | None = None
    dry_run: bool = False
    started_at: datetime = field(default_factory=_now)

    @property
    def workspace(self) -> Workspace:
        return workspace_for(self.run_key)

    def record(self, database_url: str | None = None) -> RunRecord:
        """The run's row, as every write of this run addresses it."""
        return RunRecord(
            self.run_id, self.model_version, airflow_run_id=self.airflow_run_id,
            interval_start=self.since, interval_end=self.until, started_at=self.started_at,
            dry_run=self.dry_run, database_url=database_url,
        )  # fmt: skip

    def to_xcom(self) -> dict[str, Any]:
        """JSON-safe form for XCom (datetimes as ISO strings)."""
        data = asdict(self)
        for name in ("since", "until", "started_at"):
            data[name] = _iso(data[name])
        return data

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> StagedRun:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for name in ("since", "until", "started_at"):
            if name in values:
                values[name] = _parse(values[name])
        return cls(**values)


def stage_run(
    run_id: str,
    run_key: str,
    *,
    model_version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    max_papers: int | None = None,
    backend: str = "local",
    airflow_run_id: str | None = None,
    dry_run: bool = False,
    database_url: str | None = None,
) -> StagedRun:
    """Resolve the model, write the pending papers of `[since, until)` to the run's workspace.

    A model that cannot label (none registered, a broken local artefact) raises
    `NoModelError` / `ArtefactError` before anything is created. Unless a dry
    run, the run's row is recorded (failed, with the error) when staging fails.
    """
    from petal_labeller.pipeline.stage import (
        check_max_papers,
        resolve_model,
        stage_pending,
        verify_local_model,
    )
    from petal_labeller.store.connection import connect

    started = _now()
    workspace = workspace_for(run_key)
    version = model_version
    try:
        check_max_papers(max_papers)  # the Params' bound again, for every caller
        with closing(connect(database_url)) as conn:
            model = resolve_model(conn, model_version)
            version = model.version
            batch = stage_pending(
                conn, workspace.input_path, model.version, since, until, max_papers
            )
            if batch.count:
                verify_local_model(conn, model)
        if batch.count:  # for the next task, on whichever worker
            workspace.publish(workspace.input_path)
        workspace.drop_local()
    except Exception as exc:
        workspace.remove()
        if not dry_run:
            record = RunRecord(
                run_id, version, airflow_run_id=airflow_run_id, interval_start=since,
                interval_end=until, started_at=started, database_url=database_url,
            )  # fmt: skip
            _record_quietly(record, exc)
        raise
    staged = StagedRun(
        run_id=run_id,
        run_key=run_key,
        model_version=model.version,
        artefact_uri=model.artefact_uri,
        count=batch.count,
        backend=backend,
        since=since,
        until=until,
        airflow_run_id=airflow_run_id,
        dry_run=dry_run,
        started_at=started,
    )
    log.info(
        "%d paper(s) to label with model %s (%s backend) in [%s, %s)",
        staged.count, staged.model_version, backend, since or "start", until or "now",
    )  # fmt: skip
    return staged


def infer_run(staged: StagedRun, batch_size: int = 32, model: Any = None) -> Path:
    """Batch inference on this machine (the local backend) into the run's output file.

    `model` may be an already loaded model, to label many batches with one load.
    """
    from petal_labeller.pipeline.infer import infer_local

    workspace = staged.workspace
    with workspace.local_copies():
        output = infer_local(
            staged.artefact_uri,
            workspace.fetch(workspace.input_path),
            workspace.output_path,
            batch_size=batch_size,
            total=staged.count,
            model=model,
        )
        workspace.publish(output)
    return output


def finish_run(
    staged: StagedRun, database_url: str | None = None, *, partial_by_request: bool = False
) -> RunSummary:
    """Check the output, keep rejected papers aside, write labels + run row in one commit.

    Raises `OutputError` when the output breaks the contract (nothing written), and
    `CoverageError` when the run leaves a paper of its window unlabelled (its labels
    are written; its row says failed). A dry run checks everything and writes no
    label: its row, marked dry run, says what it would have written.
    """
    with staged.workspace.local_copies():  # the checked rows are spooled there until written
        return _finish_run(staged, database_url, partial_by_request)


def _finish_run(
    staged: StagedRun, database_url: str | None, partial_by_request: bool
) -> RunSummary:
    from petal_labeller.pipeline.validate import check_output, write_quarantine
    from petal_labeller.store.connection import connect
    from petal_labeller.store.taxonomy import read_taxonomy

    workspace = staged.workspace
    with closing(connect(database_url)) as conn:
        known = read_taxonomy(conn).ids
    checked = check_output(
        workspace.fetch(workspace.input_path), workspace.fetch(workspace.output_path), known
    )
    quarantine = write_quarantine(checked.rejected, quarantine_dir() / f"{staged.run_key}.jsonl")
    if quarantine:
        quarantine = publish_quarantine(quarantine, staged.run_key)
    for item in checked.rejected:
        log.warning("Rejected paper %s (%r): %s", item["paper_id"], item["title"], item["error"])
    if quarantine:
        log.warning("%d rejected paper(s) kept in %s", len(checked.rejected), quarantine)
    if staged.dry_run:
        log.info(
            "Dry run: would write %d label(s) for %d paper(s); nothing written",
            len(checked.rows), len(checked.labelled),
        )  # fmt: skip
    summary = write_labels(staged.record(database_url), checked, papers_selected=staged.count)
    if quarantine:
        summary = RunSummary(**{**asdict(summary), "quarantine": str(quarantine)})
    log.info("Run summary: %s", summary)
    if not staged.dry_run:
        rejected = [i["paper_id"] for i in checked.rejected if isinstance(i.get("paper_id"), int)]
        left = _check_coverage(staged, rejected, partial_by_request, database_url)
        summary = RunSummary(**{**asdict(summary), "papers_left": left})
    return summary


def _check_coverage(
    staged: StagedRun,
    set_aside: list[int] | None = None,
    partial_by_request: bool = False,
    database_url: str | None = None,
) -> int:
    """Fail the run (`CoverageError`) if it leaves a paper of its window unlabelled,
    unless a terminal user capped it; returns how many it left."""
    from petal_labeller.pipeline.coverage import check_window_labelled

    return check_window_labelled(
        staged.run_id,
        staged.model_version,
        staged.since,
        staged.until,
        staged.started_at,
        selected=staged.count,
        set_aside=set_aside or [],
        partial_by_request=partial_by_request,
        database_url=database_url,
    )


def finish_empty_run(staged: StagedRun, database_url: str | None = None) -> RunSummary:
    """Record a run that selected no paper as a finished success with zero counts
    (a dry run too, marked as one)."""
    log.info("No paper to label: recording run %s as done with 0 papers", staged.run_id)
    summary = record_empty_run(staged.record(database_url))
    if not staged.dry_run:
        _check_coverage(staged, database_url=database_url)
    return summary


def record_failure(
    staged: StagedRun, error: BaseException | str, database_url: str | None = None
) -> None:
    """Record the run as failed (error text redacted) unless it already finished or is a dry run."""
    if staged.dry_run:
        return
    record_failed_run(staged.record(database_url), str(error))


def _record_quietly(run: RunRecord, exc: BaseException) -> None:
    """Best effort: a database that is down cannot take the failure record either."""
    try:
        record_failed_run(run, f"{type(exc).__name__}: {exc}")
    except Exception:
        log.warning("Could not record the failure of run %s", run.run_id, exc_info=True)


def label_window(
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    model_version: str | None = None,
    max_papers: int | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
    database_url: str | None = None,
    batch_size: int = 32,
) -> RunSummary:
    """Label the papers ingested in `[since, until)` (no bounds: every pending paper) here.

    The whole run on this machine: stage, local inference, check, one-transaction
    write; the workspace is removed whatever happens and a failure is recorded.
    """
    run_id = run_id or new_run_id()
    staged = stage_run(
        run_id,
        f"cli/{run_id.rsplit('/', 1)[-1]}",
        model_version=model_version,
        since=since,
        until=until,
        max_papers=max_papers,
        dry_run=dry_run,
        database_url=database_url,
    )
    try:
        if not staged.count:
            return finish_empty_run(staged, database_url)
        infer_run(staged, batch_size=batch_size)
        return finish_run(staged, database_url, partial_by_request=max_papers is not None)
    except BaseException as exc:
        try:
            record_failure(staged, f"{type(exc).__name__}: {exc}", database_url)
        except Exception:
            log.warning("Could not record the failure of run %s", run_id, exc_info=True)
        raise
    finally:
        staged.workspace.remove()
