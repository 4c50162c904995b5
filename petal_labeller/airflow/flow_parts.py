"""Pieces both flows (labelling and training) are built from: the configuration check,
the SageMaker task group, and the settings their SageMaker operators share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from airflow.sdk import TaskGroup, task
from airflow.sdk.exceptions import AirflowFailException

from petal_labeller import config
from petal_labeller.airflow import variables
from petal_labeller.airflow.params import resolve_backend

log = logging.getLogger(__name__)

#: Seconds between the SageMaker operators' status polls; tests shorten it.
POLL_SECONDS_ENV = "PETAL_SAGEMAKER_POLL_SECONDS"


def poll_seconds(default: int) -> int:
    """Read at parse time: a bad value falls back to `default` (check_config fails on it)."""
    return config.get_or_default(POLL_SECONDS_ENV, warn=log.warning) or default


def job_name(kind: str) -> str:
    """Template of a SageMaker name unique per run and try (see `names.sagemaker_name`)."""
    return "{{ sagemaker_name('" + kind + "', dag.dag_id, run_id, ti.try_number) }}"


def deferral_wanted(value: str | None) -> bool:
    """Variable `petal_sagemaker_deferrable` as a yes/no: unset means defer."""
    if value is None:
        return True
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise AirflowFailException(
            f"Variable {variables.DEFERRABLE} must be true or false, not {value[:40]!r}"
        )
    return word == "true"


def defer_unless_turned_off(context: Any) -> None:
    """Each SageMaker wait's `pre_execute`: defer to the triggerer unless the Variable
    says no. Read when the task starts, not when the DAG file is parsed: a DAG file must
    not query Variables, and an operator can change it without a redeploy. (Airflow's
    own `[operators] default_deferrable` defaults to off, which would leave every
    deployment's workers waiting on SageMaker for hours; so ours defaults to on.)"""
    from airflow.sdk import Variable

    wanted = deferral_wanted(Variable.get(variables.DEFERRABLE, default=None))
    context["task"].deferrable = wanted
    log.info("SageMaker wait: %s", "deferred to the triggerer" if wanted else "on this worker")


def job_operator_kwargs(default_poll_s: int) -> dict[str, Any]:
    """Waiting and naming rules every SageMaker job operator of ours follows."""
    return {
        "check_interval": poll_seconds(default_poll_s),
        # Names carry the run and the try, so an existing job is a bug, not a retry.
        "action_if_job_exists": "fail",
        "deferrable": True,
        "pre_execute": defer_unless_turned_off,
    }


def check_config_task(
    required_for_sagemaker: Iterable[str], model_on_worker: Iterable[str] = ("local",)
) -> Callable[..., Any]:
    """The first task of a flow: resolve the backend and refuse a sagemaker run that
    cannot work, at once and without retries, naming everything that is missing.
    `model_on_worker`: the backends whose runs load the model on the worker, which
    then needs the `local` extra (torch, transformers)."""
    required, needs_model = tuple(required_for_sagemaker), tuple(model_on_worker)

    @task(task_id="check_config", retries=0)
    def check_config(**context: Any) -> str:
        try:
            config.load()  # every setting, so a bad one fails here, named, not mid-run
            backend = resolve_backend(context["params"]["backend"])
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        if backend == "sagemaker":
            from petal_labeller.airflow.aws.config_check import sagemaker_problems

            problems = sagemaker_problems(required)
            if problems:
                raise AirflowFailException(
                    "the sagemaker backend is not configured: " + "; ".join(problems)
                )
        if backend in needs_model:  # a worker installed with [airflow] alone has no model stack
            from petal_labeller.extras import MissingExtraError, require_extra

            try:
                require_extra("local", f"a {backend}-backend run of this DAG")
            except MissingExtraError as exc:
                raise AirflowFailException(str(exc)) from exc
        log.info("Backend %s: configuration complete", backend)
        return backend

    return check_config


def sagemaker_group(
    upload: Callable[[], Any], job: Callable[[], Any], download: Callable[[], Any]
) -> tuple[TaskGroup, Any, Any]:
    """`sagemaker.{upload -> job -> download}`; returns (group, job operator, download task)."""
    with TaskGroup("sagemaker") as group:
        uploaded, operator, downloaded = upload(), job(), download()
        uploaded >> operator >> downloaded
    return group, operator, downloaded
