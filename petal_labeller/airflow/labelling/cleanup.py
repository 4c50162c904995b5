"""What a labelling run's `cleanup` teardown removes: only what the run may have created.

A run that failed before it created anything (no model artefact in S3, a
bucket it may not write to) must not need AWS to clean up: the cleanup would
fail too (no region, no access) and send a second alert for nothing. So each
AWS step runs only when the task that creates that resource left a trace:
`upload_input` records the run's S3 prefix in XCom just before it writes under
it, and a SageMaker model or job can exist only once `create_model` has run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The XCom key under which `upload_input` records the S3 prefix it is about to write to.
STAGING_KEY = "s3_staging_prefix"
UPLOAD_TASK = "sagemaker.upload_input"
CREATE_MODEL_TASK = "sagemaker.create_model"
#: Task states in which no try ever started, so the task created nothing.
NEVER_RAN = frozenset({None, "skipped", "upstream_failed", "removed"})


@dataclass(frozen=True)
class Created:
    """What a run may have left in AWS: its S3 staging prefix, SageMaker models and jobs."""

    s3_prefix: str | None = None
    sagemaker: bool = False

    @property
    def nothing(self) -> bool:
        return self.s3_prefix is None and not self.sagemaker


def created_by(context: dict[str, Any]) -> Created:
    """Read, from XCom and the run's task states, what this run's tasks may have created."""
    ti, dag_run = context["ti"], context["dag_run"]
    prefix = ti.xcom_pull(task_ids=UPLOAD_TASK, key=STAGING_KEY)
    states = ti.get_task_states(
        dag_id=dag_run.dag_id, run_ids=[dag_run.run_id], task_ids=[CREATE_MODEL_TASK]
    )
    state = states.get(dag_run.run_id, {}).get(CREATE_MODEL_TASK)
    return Created(s3_prefix=prefix or None, sagemaker=state not in NEVER_RAN)


def aws_steps(
    created: Created, bucket: Callable[[], str], name_prefix: Callable[[str], str]
) -> list[tuple[str, Callable[[], Any]]]:
    """The AWS cleanup steps for what was created; none when nothing was.

    `bucket` and `name_prefix(kind)` are called only by the steps that need them,
    so reading the bucket Variable is itself skipped when nothing is in S3.
    """
    from petal_labeller.airflow.aws import s3_staging
    from petal_labeller.airflow.aws.sagemaker_cleanup import delete_models, stop_transform_jobs

    steps: list[tuple[str, Callable[[], Any]]] = []
    if created.s3_prefix:
        prefix = created.s3_prefix
        steps.append(
            (
                "delete the S3 staging",
                lambda: s3_staging.delete_prefix(s3_staging.s3_hook(), bucket(), prefix),
            )
        )
    if created.sagemaker:
        steps += [
            (
                "stop transform jobs still running",
                lambda: stop_transform_jobs(name_prefix("transform")),
            ),
            ("delete models left by earlier tries", lambda: delete_models(name_prefix("model"))),
        ]
    return steps
