"""What every PeTaL DAG shares: owner, retries with exponential backoff, the failure alert."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum

from petal_labeller.airflow.notifier import failure_notifier

OWNER = "petal"
TAGS = ["petal"]


def start_date() -> pendulum.DateTime:
    """First data interval of the daily schedule; PETAL_START_DATE (YYYY-MM-DD) moves it."""
    return pendulum.parse(os.environ.get("PETAL_START_DATE", "2026-11-01"), tz="UTC")


def default_args(
    retries: int = 2, on_failure: list[Callable[[Any], None]] | None = None
) -> dict[str, Any]:
    """Task defaults: a transient failure (database restart, S3 hiccup) is retried with backoff.

    After the last try the alert goes out, then any `on_failure` callbacks run.
    """
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=8),
        "on_failure_callback": [failure_notifier(), *(on_failure or [])],
    }


def dag_kwargs(
    doc_md: str, tags: list[str], on_failure: list[Callable[[Any], None]] | None = None
) -> dict[str, Any]:
    """Keyword arguments for `DAG(...)` common to every PeTaL DAG."""
    from petal_labeller.airflow.names import MACROS

    return {
        "doc_md": doc_md,
        "tags": [*TAGS, *tags],
        "default_args": default_args(on_failure=on_failure),
        "max_active_runs": 1,
        "user_defined_macros": MACROS,
    }
