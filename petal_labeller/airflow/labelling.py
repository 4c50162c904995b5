"""The labelling flow shared by `petal_label_papers` (one data interval) and
`petal_relabel_papers` (everything the production model has not labelled).

stage (setup) -> choose_path -> infer_local | sagemaker.{upload_input -> create_model
(setup) -> transform -> download_output; delete_model (teardown)} -> write_labels;
cleanup (teardown) removes the workspace and the S3 staging whatever happened.
Teardowns run even when the work failed and do not hide that failure: they are
left out of the run's state (no `on_failure_fail_dagrun`, which would make a
successful cleanup turn a failed run green), so the run still fails and the
notifier fires; a failing teardown alerts through its own callback. Each task
is a few lines over `petal_labeller.pipeline`; SageMaker work goes through the
provider's operators.
"""

from __future__ import annotations

import logging
import os
from contextlib import closing
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerDeleteModelOperator,
    SageMakerModelOperator,
    SageMakerTransformOperator,
)
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import TaskGroup, Variable, task
from airflow.sdk.exceptions import AirflowFailException

from petal_labeller.airflow import s3_staging, sagemaker_configs
from petal_labeller.airflow.cleanup_steps import run_cleanup_steps
from petal_labeller.airflow.names import run_prefix, sagemaker_name, sagemaker_name_prefix
from petal_labeller.airflow.params import resolve_backend
from petal_labeller.pipeline.workspace import quarantine_dir, workspace_for

log = logging.getLogger(__name__)

#: Jinja helpers the operator configs use; pass as the DAG's `user_defined_macros`.
MACROS = {"sagemaker_name": sagemaker_name}

INTERVAL = "interval"  # papers ingested in the run's data interval
EVERYTHING = "everything"  # every paper the chosen model has not labelled

# Airflow Variables for the sagemaker backend (documented in docs/airflow.md).
BUCKET_VARIABLE = "petal_s3_bucket"
IMAGE_VARIABLE = "petal_sagemaker_image"
ROLE_VARIABLE = "petal_sagemaker_role"

_UPLOADED = "{{ ti.xcom_pull(task_ids='sagemaker.upload_input')"
_MODEL_NAME = "{{ ti.xcom_pull(task_ids='sagemaker.create_model')['Model']['ModelName'] }}"


def _labelling_run_id(dag_id: str, run_id: str) -> str:
    return f"{dag_id}/{run_id}"


@task
def stage(scope: str, **context: Any) -> dict[str, Any]:
    """Select the pending papers of this run and write them to the run's workspace."""
    from petal_labeller.pipeline.stage import NoModelError, resolve_model, stage_pending
    from petal_labeller.store.connection import connect

    params, dag_run = context["params"], context["dag_run"]
    backend = resolve_backend(params["backend"])
    since, until = None, None
    if scope == INTERVAL:
        since, until = context["data_interval_start"], context["data_interval_end"]
        if since is None:  # e.g. `airflow dags trigger` without --logical-date
            log.info("Run has no data interval: labelling every pending paper")
    key = run_prefix(dag_run.dag_id, dag_run.run_id)
    workspace = workspace_for(key)
    with closing(connect()) as conn:
        try:
            model = resolve_model(conn, params["model_version"])
        except NoModelError as exc:  # retrying cannot register a model: fail now
            raise AirflowFailException(str(exc)) from exc
        batch = stage_pending(
            conn, workspace.input_path, model.version, since, until, params["max_papers"]
        )
        if batch.count:
            _verify_model(conn, model, workspace)
    log.info(
        "%d paper(s) to label with model %s (%s backend) in [%s, %s)",
        batch.count, model.version, backend, since or "start", until or "now",
    )  # fmt: skip
    return {
        "backend": backend,
        "count": batch.count,
        "model_version": model.version,
        "artefact_uri": model.artefact_uri,
        "run_key": key,
        "workspace": str(workspace.root),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }


def _verify_model(conn: Any, model: Any, workspace: Any) -> None:
    """A broken artefact fails the run before any resource or label exists; no retry fixes it.

    The cleanup teardown does not run when its setup task fails, so the staged
    papers are removed here.
    """
    from petal_labeller.pipeline.stage import verify_local_model
    from petal_labeller.runtime.errors import ArtefactError

    try:
        verify_local_model(conn, model)
    except ArtefactError as exc:
        workspace.remove()
        raise AirflowFailException(f"model {model.version}: {exc}") from exc


@task.branch
def choose_path(staged: dict[str, Any]) -> str:
    """Nothing to do makes a quick success that creates no SageMaker resource."""
    if staged["count"] == 0:
        return "nothing_to_label"
    return "infer_local" if staged["backend"] == "local" else "sagemaker.upload_input"


@task
def infer_local(staged: dict[str, Any]) -> str:
    from petal_labeller.pipeline.infer import infer_local as run_inference

    workspace = workspace_for(staged["run_key"])
    run_inference(staged["artefact_uri"], workspace.input_path, workspace.output_path)
    return str(workspace.output_path)


@task
def upload_input(staged: dict[str, Any]) -> dict[str, str]:
    """Put the model artefact (once per version) and this run's papers in S3."""
    hook = s3_staging.s3_hook()
    bucket = Variable.get(BUCKET_VARIABLE)
    prefix = f"petal/runs/{staged['run_key']}"
    workspace = workspace_for(staged["run_key"])
    input_key = f"{prefix}/input/{workspace.input_path.name}"
    output_prefix = f"s3://{bucket}/{prefix}/output"
    return {
        "bucket": bucket,
        "prefix": prefix,
        "model_data_url": s3_staging.ensure_model_in_s3(
            hook, staged["artefact_uri"], bucket, staged["model_version"]
        ),
        "input_uri": s3_staging.upload(hook, workspace.input_path, bucket, input_key),
        "output_uri": output_prefix,
        "output_key": sagemaker_configs.transform_output_key(f"{prefix}/output", input_key),
    }


@task
def download_output(staged: dict[str, Any], uploaded: dict[str, str]) -> str:
    workspace = workspace_for(staged["run_key"])
    hook = s3_staging.s3_hook()
    s3_staging.download(hook, uploaded["bucket"], uploaded["output_key"], workspace.output_path)
    return str(workspace.output_path)


@task(trigger_rule="none_failed_min_one_success")
def write_labels(**context: Any) -> dict[str, Any]:
    """Validate the output, keep rejected papers aside, write labels + run row in one go.

    Reads `stage`'s result from XCom rather than as an argument: a direct edge
    from a setup task must have trigger rule all_success, and this task has to
    run after whichever inference path the branch chose.
    """
    from dataclasses import asdict

    from petal_labeller.pipeline.validate import OutputError, check_output, write_quarantine
    from petal_labeller.pipeline.write import write_labels as write
    from petal_labeller.store.connection import connect
    from petal_labeller.store.taxonomy import read_taxonomy

    staged = context["ti"].xcom_pull(task_ids="stage")
    workspace = workspace_for(staged["run_key"])
    with closing(connect()) as conn:
        known = read_taxonomy(conn).ids
    try:
        checked = check_output(workspace.input_path, workspace.output_path, known)
    except OutputError as exc:  # the same output would fail the same way on a retry
        raise AirflowFailException(str(exc)) from exc
    quarantine = write_quarantine(checked.rejected, quarantine_dir() / f"{staged['run_key']}.jsonl")
    for item in checked.rejected:
        log.warning("Rejected paper %s (%r): %s", item["paper_id"], item["title"], item["error"])
    if quarantine:
        log.warning("%d rejected paper(s) kept in %s", len(checked.rejected), quarantine)
    if context["params"]["dry_run"]:
        log.info(
            "Dry run: would write %d label(s) for %d paper(s); nothing written",
            len(checked.rows), len(checked.labelled),
        )  # fmt: skip
        return {"dry_run": True, "labels": len(checked.rows), "rejected": len(checked.rejected)}
    dag_run = context["dag_run"]
    summary = write(
        _labelling_run_id(dag_run.dag_id, dag_run.run_id),
        checked,
        staged["model_version"],
        papers_selected=staged["count"],
        airflow_run_id=dag_run.run_id,
        interval_start=staged["since"],
        interval_end=staged["until"],
    )
    log.info("Run summary: %s", summary)
    return {**asdict(summary), "quarantine": str(quarantine) if quarantine else None}


@task
def cleanup(staged: dict[str, Any], **context: Any) -> None:
    """Remove what this run staged, stop any transform still running, and record the run
    as failed if it wrote nothing. Every step is tried even if another fails."""
    from petal_labeller.pipeline.write import record_failed_run

    dag_run = context["dag_run"]
    steps = [("remove the workspace", workspace_for(staged["run_key"]).remove)]
    if staged["backend"] == "sagemaker" and staged["count"]:
        from petal_labeller.airflow.sagemaker_cleanup import delete_models, stop_transform_jobs

        prefix = f"petal/runs/{staged['run_key']}"
        steps += [
            (
                "delete the S3 staging",
                lambda: s3_staging.delete_prefix(
                    s3_staging.s3_hook(), Variable.get(BUCKET_VARIABLE), prefix
                ),
            ),
            (
                "stop transform jobs still running",
                lambda: stop_transform_jobs(
                    sagemaker_name_prefix("transform", dag_run.dag_id, dag_run.run_id)
                ),
            ),
            (
                "delete models left by earlier tries",
                lambda: delete_models(
                    sagemaker_name_prefix("model", dag_run.dag_id, dag_run.run_id)
                ),
            ),
        ]
    if staged["count"] and not context["params"]["dry_run"]:
        steps.append(
            (
                "record the run",
                lambda: record_failed_run(
                    _labelling_run_id(dag_run.dag_id, dag_run.run_id),
                    staged["model_version"],
                    "the run ended before its labels were written; see the Airflow task logs",
                    airflow_run_id=dag_run.run_id,
                    interval_start=staged["since"],
                    interval_end=staged["until"],
                ),
            )
        )
    run_cleanup_steps(steps)


def _sagemaker_group(staged: Any) -> tuple[Any, Any, Any]:
    """upload -> create model -> transform -> download, with the model deleted as a teardown."""
    with TaskGroup("sagemaker") as group:
        uploaded = upload_input(staged)
        create_model = SageMakerModelOperator(
            task_id="create_model",
            config=sagemaker_configs.model_config(
                model_name="{{ sagemaker_name('model', dag.dag_id, run_id, ti.try_number) }}",
                image_uri="{{ var.value." + IMAGE_VARIABLE + " }}",
                model_data_url=_UPLOADED + "['model_data_url'] }}",
                role_arn="{{ var.value." + ROLE_VARIABLE + " }}",
            ),
        )
        transform = SageMakerTransformOperator(
            task_id="transform",
            config=sagemaker_configs.transform_config(
                job_name="{{ sagemaker_name('transform', dag.dag_id, run_id, ti.try_number) }}",
                model_name=_MODEL_NAME,
                input_uri=_UPLOADED + "['input_uri'] }}",
                output_uri=_UPLOADED + "['output_uri'] }}",
                instance_type="{{ params.instance_type }}",
            ),
            # How often the operator polls the job; tests shorten it.
            check_interval=int(os.environ.get("PETAL_SAGEMAKER_POLL_SECONDS", "30")),
            max_ingestion_time=6 * 3600,
            # Names carry the run and the try, so an existing job is a bug, not a retry.
            action_if_job_exists="fail",
        )
        downloaded = download_output(staged, uploaded)
        delete_model = SageMakerDeleteModelOperator(
            task_id="delete_model", config=sagemaker_configs.delete_model_config(_MODEL_NAME)
        )
        uploaded >> create_model >> transform >> downloaded
        downloaded >> delete_model.as_teardown(setups=create_model)
    return group, downloaded, delete_model


def labelling_flow(scope: str) -> None:
    """Add the labelling tasks to the DAG being defined (call inside `with DAG(...)`)."""
    staged = stage(scope)
    route = choose_path(staged)
    nothing = EmptyOperator(task_id="nothing_to_label")
    local = infer_local(staged)
    group, downloaded, delete_model = _sagemaker_group(staged)
    written = write_labels()
    route >> [nothing, local, group]
    [local, downloaded] >> written
    # After delete_model: cleanup deletes every try's model, the last try's included.
    [written, nothing, delete_model] >> cleanup(staged).as_teardown(setups=staged)
