"""What every PeTaL DAG shares: owner, retries with exponential backoff, and what a
failure leaves behind (a row with its error, one alert: `failures`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum

from petal_labeller import config
from petal_labeller.airflow.failures import on_run_failure, on_run_success, record_task_error

log = logging.getLogger(__name__)

OWNER = "petal"
TAGS = ["petal"]


def start_date() -> pendulum.DateTime:
    """First data interval of the daily schedule; PETAL_START_DATE (YYYY-MM-DD) moves it.

    Read at parse time, so a bad value falls back to the default with a warning (a DAG
    import error would hide all three DAGs); the run's check_config task fails on it.
    """
    day = config.get_or_default("PETAL_START_DATE", warn=log.warning)
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def default_args(
    retries: int = 2, on_failure: list[Callable[[Any], None]] | None = None
) -> dict[str, Any]:
    """Task defaults: a transient failure (database restart, S3 hiccup) is retried with backoff.

    After the last try the task's error goes to the run's row: through `on_failure`
    when given (a flow that knows more about its run), else `record_task_error`. The
    alert is the DAG's (`dag_kwargs`), so a run sends one whatever number of tasks fail.
    """
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=8),
        "on_failure_callback": list(on_failure or [record_task_error]),
    }


def dag_kwargs(
    doc_md: str, tags: list[str], on_failure: list[Callable[[Any], None]] | None = None
) -> dict[str, Any]:
    """Keyword arguments for `DAG(...)` common to every PeTaL DAG.

    The alert is DAG-level: it runs in the dag-processor when the scheduler fails the
    run, so it also covers a task killed from outside, a timeout, or a failure before
    any task could record one; a successful run whose teardown failed alerts too.
    """
    from petal_labeller.airflow.names import MACROS

    return {
        "doc_md": doc_md,
        "tags": [*TAGS, *tags],
        "default_args": default_args(on_failure=on_failure),
        "max_active_runs": 1,
        "on_failure_callback": on_run_failure,
        # A run whose teardown failed succeeds, but its cleanup is worth an alert.
        "on_success_callback": on_run_success,
        "user_defined_macros": MACROS,
    }
