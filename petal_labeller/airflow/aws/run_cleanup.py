"""What a run's `cleanup` teardown removes in AWS: only what the run may have created.

One design for both flows (labelling and training). A run that failed before it
created anything (no model artefact in S3, a bucket it may not write to) must not
need AWS to clean up: the cleanup would fail too (no region, no access) and send a
second alert for nothing. So each AWS step runs only when the task that creates
that resource left a trace: the upload task records the run's S3 prefix in XCom
(`record_staging`) just before it writes under it, and a SageMaker model or job can
exist only once one of the flow's creating tasks has started a try.

Every try's resources are found by the run's name prefix, not by the last try's
XCom: a try that created a model and then lost the reply leaves no XCom at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The XCom key under which an upload task records the S3 prefix it is about to write to.
STAGING_KEY = "s3_staging_prefix"
#: Task states in which no try ever started, so the task created nothing.
NEVER_RAN = frozenset({None, "skipped", "upstream_failed", "removed"})

Step = tuple[str, Callable[[], Any]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    """What one flow's tasks may create in AWS, and under which SageMaker name kinds.

    `jobs` pairs the SageMaker job type ("transform" or "training") with the name kind
    its jobs are given (`names.sagemaker_name_prefix`); `models` lists model name kinds.
    """

    upload_task: str
    creating_tasks: tuple[str, ...]
    jobs: tuple[tuple[str, str], ...]
    models: tuple[str, ...]


@dataclass(frozen=True)
class Created:
    """What a run may have left in AWS: its S3 staging prefix, SageMaker models and jobs."""

    s3_prefix: str | None = None
    sagemaker: bool = False

    @property
    def nothing(self) -> bool:
        return self.s3_prefix is None and not self.sagemaker


def record_staging(context: dict[str, Any], prefix: str) -> None:
    """Say, before the first write under `prefix`, that this run has S3 staging to delete."""
    context["ti"].xcom_push(key=STAGING_KEY, value=prefix)


def created_by(resources: Resources, context: dict[str, Any]) -> Created:
    """Read, from XCom and the run's task states, what this run's tasks may have created."""
    ti, dag_run = context["ti"], context["dag_run"]
    prefix = ti.xcom_pull(task_ids=resources.upload_task, key=STAGING_KEY)
    states = ti.get_task_states(
        dag_id=dag_run.dag_id, run_ids=[dag_run.run_id], task_ids=list(resources.creating_tasks)
    ).get(dag_run.run_id, {})
    ran = any(states.get(task) not in NEVER_RAN for task in resources.creating_tasks)
    return Created(s3_prefix=prefix or None, sagemaker=ran)


def aws_steps(
    resources: Resources,
    created: Created,
    bucket: Callable[[], str],
    name_prefix: Callable[[str], str],
) -> list[Step]:
    """The AWS cleanup steps for what was created; none when nothing was.

    `bucket` and `name_prefix(kind)` are called only by the steps that need them,
    so reading the bucket Variable is itself skipped when nothing is in S3. Jobs are
    stopped before models are deleted: a running transform holds its model.
    """
    from petal_labeller.airflow.aws import s3_staging
    from petal_labeller.airflow.aws.sagemaker_cleanup import delete_models, stop_jobs

    steps: list[Step] = []
    if created.s3_prefix:
        prefix = created.s3_prefix
        steps.append(
            (
                "delete the S3 staging",
                lambda: s3_staging.delete_prefix(s3_staging.s3_hook(), bucket(), prefix),
            )
        )
    if not created.sagemaker:
        return steps
    for job_type, kind in resources.jobs:
        steps.append(
            (
                f"stop {kind} {job_type} jobs still running",
                lambda t=job_type, k=kind: stop_jobs(t, name_prefix(k)),
            )
        )
    for kind in resources.models:
        steps.append(
            (f"delete {kind}s left by earlier tries", lambda k=kind: delete_models(name_prefix(k)))
        )
    return steps


def cleanup_steps(
    resources: Resources, context: dict[str, Any], bucket: Callable[[], str]
) -> list[Step]:
    """The AWS steps for this run's `cleanup`, named by its DAG and run id."""
    from petal_labeller.airflow.names import sagemaker_name_prefix

    dag_run = context["dag_run"]
    created = created_by(resources, context)
    if created.nothing:
        log.info("Cleanup: this run created nothing in S3 or SageMaker")
    return aws_steps(
        resources,
        created,
        bucket=bucket,
        name_prefix=lambda kind: sagemaker_name_prefix(kind, dag_run.dag_id, dag_run.run_id),
    )
