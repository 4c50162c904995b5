"""The labelling flow shared by `petal_label_papers` (one data interval) and
`petal_relabel_papers` (everything the production model has not labelled).

check_config -> stage (setup) -> choose_path -> infer_local | sagemaker.{upload_input
-> create_model (setup) -> transform -> download_output; delete_model (teardown)}
-> write_labels; cleanup (teardown) removes the workspace and the S3 staging
whatever happened. Teardowns run even when the work failed and do not hide that
failure: they are left out of the run's state (no `on_failure_fail_dagrun`,
which would make a successful cleanup turn a failed run green), so the run
still fails and the notifier fires. Each task is a few lines over
`petal_labeller.pipeline.run`, which owns the run; SageMaker work goes through
the provider's operators.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerDeleteModelOperator,
    SageMakerModelOperator,
    SageMakerTransformOperator,
)
from airflow.sdk import Variable, task
from airflow.sdk.exceptions import AirflowFailException

from petal_labeller.airflow import variables
from petal_labeller.airflow.aws import run_cleanup, s3_layout, s3_staging, sagemaker_configs
from petal_labeller.airflow.aws.workspace_storage import use_workspace_storage
from petal_labeller.airflow.cleanup_steps import run_cleanup_steps
from petal_labeller.airflow.flow_parts import (
    check_config_task,
    job_name,
    job_operator_kwargs,
    sagemaker_group,
)
from petal_labeller.airflow.names import run_key
from petal_labeller.airflow.params import DEFAULT_INSTANCE_TYPE, instance_type_template
from petal_labeller.pipeline.run import StagedRun
from petal_labeller.pipeline.validate import max_output_bytes

log = logging.getLogger(__name__)

INTERVAL = "interval"  # papers ingested in the run's data interval
EVERYTHING = "everything"  # every paper the chosen model has not labelled

_UPLOADED = "{{ ti.xcom_pull(task_ids='sagemaker.upload_input')"
_MODEL_NAME = "{{ ti.xcom_pull(task_ids='sagemaker.create_model')['Model']['ModelName'] }}"
#: What a sagemaker run may create, for its cleanup to find (names from `job_name`).
RESOURCES = run_cleanup.Resources(
    upload_task="sagemaker.upload_input",
    creating_tasks=("sagemaker.create_model",),
    jobs=(("transform", "transform"),),
    models=("model",),
)


def labelling_run_id(dag_id: str, run_id: str, clear_number: int | None = 0) -> str:
    """The `labelling_runs.run_id` of a DAG run (the PeTaL page links it back to Airflow).

    A run cleared and run again (the UI's Clear, a backfill that reprocesses the run
    holding its day) gets a row of its own, `#<clear number>` after the first, so the
    earlier attempt (a dry run, say) stays in the record; task retries share the row.
    """
    base = f"{dag_id}/{run_id}"
    return f"{base}#{clear_number}" if clear_number else base


def labelling_run_id_of(dag_run: Any) -> str:
    """`labelling_run_id` of a task context's (or the metadata database's) DagRun."""
    return labelling_run_id(dag_run.dag_id, dag_run.run_id, getattr(dag_run, "clear_number", 0))


def data_window(scope: str, context: dict[str, Any]) -> tuple[Any, Any]:
    """The window of papers a run labels; none (every pending paper) for a run without one.

    A run with a logical date labels the schedule's interval that holds it, whatever
    interval Airflow stored for it (`CatchupFromTimetable.interval_of`): the CLI's
    `dags trigger --logical-date` stores one from the trigger time, and a backfill
    that re-runs an existing run keeps that run's. A manual run without a logical date
    (`airflow dags trigger` without --logical-date, the REST API's default) has none.
    """
    if scope != INTERVAL:
        return None, None
    logical_date = context.get("logical_date")
    if logical_date is None:
        log.info("Run has no logical date: labelling every pending paper")
        return None, None
    interval = context["dag"].timetable.interval_of(logical_date)
    stored = (context.get("data_interval_start"), context.get("data_interval_end"))
    if stored != (interval.start, interval.end):
        log.info(
            "Labelling [%s, %s), the schedule's interval of logical date %s (Airflow "
            "stored [%s, %s) for this run)",
            interval.start, interval.end, logical_date, *stored,
        )  # fmt: skip
    return interval.start, interval.end


def _staged(context: dict[str, Any]) -> StagedRun:
    return StagedRun.from_xcom(context["ti"].xcom_pull(task_ids="stage"))


def record_task_failure(context: dict[str, Any]) -> None:
    """on_failure_callback: the run's row gets the failing task's (redacted) error.

    Before `stage` (check_config) or if stage itself failed, there is no staged run:
    the row is recorded without a model (`failures.record_task_error`).
    """
    from petal_labeller.airflow.failures import record_task_error
    from petal_labeller.pipeline.run import record_failure

    ti = context["ti"]
    try:
        staged = ti.xcom_pull(task_ids="stage")
    except Exception:  # the execution API is what failed: record what can be recorded
        staged = None
    if not staged:
        record_task_error(context)
        return
    try:
        record_failure(StagedRun.from_xcom(staged), f"{ti.task_id}: {context.get('exception')}")
    except Exception:
        log.error("Could not record the failure in labelling_runs", exc_info=True)


#: Params that make a run label less than its whole window with the production model.
PARTIAL_PARAMS = ("dry_run", "model_version", "max_papers")


def kept_conf_problem(dag_run: Any, params: dict[str, Any]) -> str | None:
    """Why a backfill must not run this run as it is, if it must not.

    A backfill with `--reprocess-behavior` re-runs the run that holds a day, and Airflow
    keeps that run's conf unless the backfill passes one (`--dag-run-conf`). So a
    manual dry run (or one on another model, or capped) re-run by a backfill would
    "succeed" leaving its day unlabelled. Such a run cannot tell a kept conf from one
    the backfill gave, so it fails and says how to label the day.
    """
    # A str enum: compare the value (str() of the task SDK's enum is "DagRunType.BACKFILL").
    if getattr(dag_run, "run_type", None) != "backfill" or not dag_run.clear_number:
        return None
    partial = {name: params[name] for name in PARTIAL_PARAMS if params.get(name)}
    if not partial:
        return None
    return (
        f"this backfill re-ran run {dag_run.run_id}, which holds the day and still carries "
        f"the conf {partial} it was triggered with (Airflow keeps a re-run's conf unless "
        "the backfill passes one), so it would leave the day unlabelled. To label it, "
        "backfill the day again with --dag-run-conf '{}'"
    )


@task
def stage(scope: str, backend: str, **context: Any) -> dict[str, Any]:
    """Select the pending papers of this run and write them to the run's workspace."""
    from petal_labeller.pipeline.run import stage_run
    from petal_labeller.pipeline.stage import NoModelError
    from petal_labeller.runtime.errors import ArtefactError

    params, dag_run = context["params"], context["dag_run"]
    if scope == INTERVAL and (problem := kept_conf_problem(dag_run, params)):
        raise AirflowFailException(problem)
    use_workspace_storage()
    since, until = data_window(scope, context)
    try:
        staged = stage_run(
            labelling_run_id_of(dag_run),
            run_key(dag_run.dag_id, dag_run.run_id),
            model_version=params["model_version"],
            since=since,
            until=until,
            max_papers=params["max_papers"],
            backend=backend,
            airflow_run_id=dag_run.run_id,
            dry_run=params["dry_run"],
        )
    except (NoModelError, ArtefactError) as exc:  # no retry registers or repairs a model
        raise AirflowFailException(str(exc)) from exc
    return staged.to_xcom()


@task.branch
def choose_path(staged: dict[str, Any]) -> str:
    """Nothing to do makes a quick success that creates no SageMaker resource."""
    if staged["count"] == 0:
        return "nothing_to_label"
    return "infer_local" if staged["backend"] == "local" else "sagemaker.upload_input"


@task
def nothing_to_label(staged: dict[str, Any]) -> dict[str, Any]:
    """Record the run as done with 0 papers: visible on the PeTaL page, not missing."""
    from petal_labeller.pipeline.coverage import CoverageError
    from petal_labeller.pipeline.run import finish_empty_run

    try:
        return finish_empty_run(StagedRun.from_xcom(staged)).to_xcom()
    except CoverageError as exc:  # papers arrived in the window after a re-run: run again
        raise AirflowFailException(str(exc)) from exc


@task
def infer_local(staged: dict[str, Any]) -> str:
    from petal_labeller.pipeline.run import infer_run

    use_workspace_storage()
    return str(infer_run(StagedRun.from_xcom(staged)))


@task
def upload_input(staged: dict[str, Any], **context: Any) -> dict[str, str]:
    """Put the model artefact (once per version) and this run's papers in S3.

    The run's prefix goes to XCom just before the first write under it, so the
    cleanup knows whether there is any S3 staging to delete (`run_cleanup`).
    """
    run = StagedRun.from_xcom(staged)
    use_workspace_storage()
    hook = s3_staging.s3_hook()
    bucket = Variable.get(variables.BUCKET)
    prefix = s3_layout.labelling_prefix(run.run_key)
    workspace = run.workspace
    input_key = f"{prefix}/input/{workspace.input_path.name}"
    model_data_url = s3_staging.ensure_model_in_s3(
        hook, run.artefact_uri, bucket, run.model_version
    )
    run_cleanup.record_staging(context, prefix)
    return {
        "bucket": bucket,
        "prefix": prefix,
        "model_data_url": model_data_url,
        "input_uri": s3_staging.stage_input(hook, workspace, bucket, input_key),
        "output_uri": s3_layout.uri(bucket, f"{prefix}/output"),
        "output_key": sagemaker_configs.transform_output_key(f"{prefix}/output", input_key),
    }


@task
def download_output(staged: dict[str, Any], uploaded: dict[str, str]) -> str:
    use_workspace_storage()
    run = StagedRun.from_xcom(staged)
    hook, bucket, key = s3_staging.s3_hook(), uploaded["bucket"], uploaded["output_key"]
    return s3_staging.keep_output(
        hook, bucket, key, run.workspace, max_bytes=max_output_bytes(run.count)
    )


@task(trigger_rule="none_failed_min_one_success")
def write_labels(**context: Any) -> dict[str, Any]:
    """Check the output and write labels + run row in one transaction (`finish_run`).

    Reads `stage`'s result from XCom rather than as an argument: a direct edge
    from a setup task must have trigger rule all_success, and this task has to
    run after whichever inference path the branch chose.
    """
    from petal_labeller.pipeline.coverage import CoverageError
    from petal_labeller.pipeline.run import finish_run
    from petal_labeller.pipeline.validate import OutputError

    use_workspace_storage()
    try:
        return finish_run(_staged(context)).to_xcom()
    except (OutputError, CoverageError) as exc:  # a retry would fail the same way
        raise AirflowFailException(str(exc)) from exc


@task
def cleanup(staged: dict[str, Any], **context: Any) -> None:
    """Remove what this run staged or created, stop any transform still running, and
    record the run as failed if it wrote nothing. Every step is tried even if another
    fails; AWS is called only for what the run's tasks may have created."""
    from petal_labeller.pipeline.run import record_failure

    use_workspace_storage()
    run = StagedRun.from_xcom(staged)
    steps: list[tuple[str, Any]] = [("remove the workspace", run.workspace.remove)]
    if run.backend == "sagemaker":
        steps += run_cleanup.cleanup_steps(
            RESOURCES, context, bucket=lambda: Variable.get(variables.BUCKET)
        )
    if run.count:
        message = "the run ended before its labels were written; see the Airflow task logs"
        steps.append(("record the run", lambda: record_failure(run, message)))
    run_cleanup_steps(steps)


def _sagemaker_tasks(staged: Any) -> tuple[Any, Any, Any]:
    """upload -> create model -> transform -> download, with the model deleted as a teardown."""
    made: dict[str, Any] = {}

    def upload() -> Any:
        made["upload"] = upload_input(staged)
        made["create_model"] = SageMakerModelOperator(
            task_id="create_model",
            config=sagemaker_configs.model_config(
                model_name=job_name("model"),
                image_uri=variables.template(variables.IMAGE),
                model_data_url=_UPLOADED + "['model_data_url'] }}",
                role_arn=variables.template(variables.ROLE),
            ),
        )
        return made["upload"] >> made["create_model"]  # the chain goes on from create_model

    def transform() -> Any:
        return SageMakerTransformOperator(
            task_id="transform",
            config=sagemaker_configs.transform_config(
                job_name=job_name("transform"),
                model_name=_MODEL_NAME,
                input_uri=_UPLOADED + "['input_uri'] }}",
                output_uri=_UPLOADED + "['output_uri'] }}",
                instance_type=instance_type_template("instance_type", DEFAULT_INSTANCE_TYPE),
            ),
            max_ingestion_time=6 * 3600,
            **job_operator_kwargs(default_poll_s=30),
        )

    def download() -> Any:
        downloaded = download_output(staged, made["upload"])
        made["delete_model"] = SageMakerDeleteModelOperator(
            task_id="delete_model", config=sagemaker_configs.delete_model_config(_MODEL_NAME)
        )
        downloaded >> made["delete_model"].as_teardown(setups=made["create_model"])
        return downloaded

    group, _, downloaded = sagemaker_group(upload, transform, download)
    return group, downloaded, made["delete_model"]


def labelling_flow(scope: str) -> None:
    """Add the labelling tasks to the DAG being defined (call inside `with DAG(...)`)."""
    backend = check_config_task(variables.LABELLING_SAGEMAKER)()
    staged = stage(scope, backend)
    route = choose_path(staged)
    nothing = nothing_to_label(staged)
    local = infer_local(staged)
    group, downloaded, delete_model = _sagemaker_tasks(staged)
    written = write_labels()
    route >> [nothing, local, group]
    [local, downloaded] >> written
    # After delete_model: cleanup deletes every try's model, the last try's included.
    [written, nothing, delete_model] >> cleanup(staged).as_teardown(setups=staged)
