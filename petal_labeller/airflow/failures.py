"""What a failed PeTaL DAG run leaves behind: a row with its error, and one alert.

The callbacks (`defaults.dag_kwargs` sets them on every DAG):

* `record_task_error`, every task's `on_failure_callback`, runs where the task ran,
  after its last try, with the exception: it writes "<task>: <error>" into the run's
  `labelling_runs` row (a row of its own if the run has none yet).
* `on_run_failure`, the DAG's `on_failure_callback`, runs in the dag-processor once
  the scheduler has failed the run, whatever failed and why: a task that raised, one
  killed from outside or timed out (its own callback may never have run), a failure
  before `stage`. It records the row if nothing did, sends the run's one alert
  (`notifier.send_alert`) and marks on the row whether it went out.
* `on_run_success`, the DAG's `on_success_callback`, alerts for a run that
  succeeded while a teardown (cleanup) failed.

The row id is the one `stage` uses (`labelling.labelling_run_id_of`), so a run has
one row whichever of them writes first; a training run gets a row too, so every
failed run of a PeTaL DAG is on the PeTaL page.
"""

from __future__ import annotations

import logging
from contextlib import closing
from datetime import datetime
from typing import Any

from petal_labeller.airflow.notifier import Alert, base_url, send_alert
from petal_labeller.store.runs import LabellingRun

log = logging.getLogger(__name__)


def row_id(context: dict[str, Any]) -> str:
    """The run's `labelling_runs.run_id`; without a DagRun in the context, dag/run only."""
    from petal_labeller.airflow.labelling.flow import labelling_run_id, labelling_run_id_of

    dag_run = context.get("dag_run")
    if dag_run is not None:
        return labelling_run_id_of(dag_run)
    return labelling_run_id(context["dag"].dag_id, context["run_id"])


def data_window(context: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The window the run labels: its timetable's interval of the logical date where the
    timetable says (`CatchupFromTimetable.interval_of`, as `stage` does), else the
    stored data interval if it is a real window (start before end), else none.

    A trigger timetable (training) or an Asset-triggered run (relabelling) has an
    empty interval: those runs label, or train on, every paper, not a window.
    """
    interval_of = getattr(getattr(context.get("dag"), "timetable", None), "interval_of", None)
    logical_date = context.get("logical_date")
    if interval_of is not None and logical_date is not None:
        interval = interval_of(logical_date)
        return interval.start, interval.end
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None or not start < end:
        return None, None
    return start, end


def _asked_failed_tasks(context: dict[str, Any]) -> tuple[str, ...] | None:
    """The run's failed tasks as Airflow knows them; None where it cannot be asked."""
    dag_id, run_id = context["dag"].dag_id, context["run_id"]
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(dag_id, run_ids=[run_id]).get(run_id, {})
    except Exception:  # no supervisor to ask (`dag.test()`), or the API is down
        log.info("Could not ask Airflow for the failed tasks of %s", run_id, exc_info=True)
        return None
    return tuple(sorted(task for task, state in states.items() if state == "failed"))


def failed_tasks(context: dict[str, Any]) -> tuple[str, ...]:
    """Ids of the run's failed tasks (asked of Airflow), else the task the context names."""
    found = _asked_failed_tasks(context)
    if found:
        return found
    ti = context.get("ti")
    return (ti.task_id,) if ti is not None else ()


def _record(context: dict[str, Any], error: str) -> None:
    """A failed row with `error`, unless the run's row already ended (it keeps its error)."""
    from petal_labeller.pipeline.write import RunRecord, record_failed_run

    start, end = data_window(context)
    run = RunRecord(
        row_id(context), None, airflow_run_id=context["run_id"], interval_start=start,
        interval_end=end,
    )  # fmt: skip
    record_failed_run(run, error)


def record_task_error(context: dict[str, Any]) -> None:
    """Task on_failure_callback: the run's row gets "<task>: <error>" (redacted)."""
    ti = context["ti"]
    try:
        _record(context, f"{ti.task_id}: {context.get('exception') or 'failed'}")
    except Exception:
        log.error("Could not record the failure of %s in labelling_runs", ti.task_id, exc_info=True)


def _stored_row(row: str) -> LabellingRun | None:
    from petal_labeller.store.connection import connect
    from petal_labeller.store.runs import get_run

    with closing(connect()) as conn:
        return get_run(conn, row)


def _mark(row: str, reason: str | None) -> None:
    from petal_labeller.store.connection import connect
    from petal_labeller.store.runs import mark_alert

    with closing(connect()) as conn:
        mark_alert(conn, row, reason is None, reason)


def _conf(context: dict[str, Any]) -> dict[str, Any]:
    dag_run = context.get("dag_run")
    return dict(getattr(dag_run, "conf", None) or {})


def on_run_failure(context: dict[str, Any]) -> None:
    """DAG on_failure_callback: make sure the run has its row, send one alert, mark its fate.

    The store being down must not cost the alert, nor the alert the row: each step
    is tried whatever happened to the one before.
    """
    dag_id, run_id, row = context["dag"].dag_id, context["run_id"], row_id(context)
    tasks = failed_tasks(context)
    fallback = f"{', '.join(tasks) or 'the run'} failed ({context.get('reason') or 'unknown'})"
    stored = None
    try:
        _record(context, fallback + "; see the Airflow task logs")
        stored = _stored_row(row)
    except Exception:
        log.error("Could not record failed run %s in labelling_runs", row, exc_info=True)
    start, end = (stored.interval_start, stored.interval_end) if stored else data_window(context)
    error = (stored.error if stored else None) or fallback
    reason = send_alert(Alert(dag_id, run_id, tasks, error, start, end, _conf(context), base_url()))
    try:
        _mark(row, reason)
    except Exception:
        log.error("Could not record the alert's fate for run %s", row, exc_info=True)


def on_run_success(context: dict[str, Any]) -> None:
    """DAG on_success_callback: a run can succeed while a teardown failed (teardowns stay
    out of the run's state), and a cleanup that failed may have left paid-for SageMaker
    resources behind: that run sends its one alert too."""
    tasks = _asked_failed_tasks(context)
    if not tasks:
        return
    dag_id, run_id, row = context["dag"].dag_id, context["run_id"], row_id(context)
    error = f"the run succeeded, but {', '.join(tasks)} failed: see its log"
    start, end = data_window(context)
    reason = send_alert(Alert(dag_id, run_id, tasks, error, start, end, _conf(context), base_url()))
    try:
        _mark(row, reason)
    except Exception:
        log.error("Could not record the alert's fate for run %s", row, exc_info=True)
