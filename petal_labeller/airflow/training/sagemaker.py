"""The `sagemaker` path of `petal_train_model`: train and evaluate in SageMaker, so the
worker needs only the `airflow` extra (no torch).

    sagemaker.upload_training_data
      -> train -> create_candidate_model -> transform_candidate ---------> download_results
      -> has_production_model -> create_production_model -> transform_production -^

The training job trains on the `train` channel; each model then labels the same
held-out papers in a batch transform with the serving image (the code that labels
in production), and `download_results` brings back the two outputs, which the
`evaluate` task scores on the worker with `model.scoring` (numpy), exactly as it
scores the local path's. Each model is deleted by its teardown; the run's cleanup
also deletes any model or stops any job an earlier try left behind.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerDeleteModelOperator,
    SageMakerModelOperator,
    SageMakerTrainingOperator,
    SageMakerTransformOperator,
)
from airflow.sdk import TaskGroup, Variable, task

from petal_labeller.airflow import variables
from petal_labeller.airflow.aws import run_cleanup, s3_layout, s3_staging, sagemaker_configs
from petal_labeller.airflow.flow_parts import job_name, job_operator_kwargs
from petal_labeller.airflow.params import (
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_TRAINING_INSTANCE_TYPE,
    instance_type_template,
)
from petal_labeller.pipeline.retrain import RetrainRun
from petal_labeller.pipeline.training import MAX_RESULT_LINE_BYTES

log = logging.getLogger(__name__)

#: The two models the gate compares; each gets a SageMaker model and a transform job.
MODELS = ("candidate", "production")
#: SageMaker name kinds (`names.sagemaker_name`) this flow creates, for the cleanup.
TRAINING_KIND = "train"
MODEL_KINDS = tuple(f"{which}-model" for which in MODELS)
TRANSFORM_KINDS = tuple(f"{which}-eval" for which in MODELS)
#: What a sagemaker run may create, for its cleanup to find (names from `job_name`).
RESOURCES = run_cleanup.Resources(
    upload_task="sagemaker.upload_training_data",
    creating_tasks=("sagemaker.train", *(f"sagemaker.create_{which}_model" for which in MODELS)),
    jobs=(("training", TRAINING_KIND), *(("transform", kind) for kind in TRANSFORM_KINDS)),
    models=MODEL_KINDS,
)

_UPLOADED = "{{ ti.xcom_pull(task_ids='sagemaker.upload_training_data')"
_TRAINED_MODEL = (
    "{{ ti.xcom_pull(task_ids='sagemaker.train')['Training']['ModelArtifacts']"
    "['S3ModelArtifacts'] }}"
)


def _model_name(which: str) -> str:
    return (
        "{{ ti.xcom_pull(task_ids='sagemaker.create_" + which + "_model')['Model']['ModelName'] }}"
    )


@task(multiple_outputs=True)
def upload_training_data(exported: dict[str, Any], **context: Any) -> dict[str, Any]:
    """The `train` channel and the held-out papers in S3, the production model too (once per
    version, where labelling runs also find it), and the hyperparameters as strings.
    Each key is also its own XCom, so the training job takes the hyperparameters as a dict;
    `run` passes the run record on to `download_results`."""
    run = RetrainRun.from_xcom(exported)
    hook = s3_staging.s3_hook()
    bucket = Variable.get(variables.BUCKET)
    prefix = s3_layout.training_prefix(run.run_key)
    run_cleanup.record_staging(context, prefix)
    for name in ("papers.jsonl", "taxonomy.json"):
        s3_staging.upload(hook, run.train_dir / name, bucket, f"{prefix}/train/{name}")
    heldout_key = f"{prefix}/evaluation/input/heldout.jsonl"
    s3_staging.upload(hook, run.heldout, bucket, heldout_key)
    production = run.production
    production_url = None
    if production:
        production_url = s3_staging.ensure_model_in_s3(
            hook, production.artefact_uri, bucket, production.version
        )
    params = context["params"]
    hyperparameters = {"preset": params["preset"], **params["train_options"]}
    uploaded: dict[str, Any] = {
        "bucket": bucket,
        "prefix": prefix,
        "train_uri": s3_layout.uri(bucket, f"{prefix}/train/"),
        "output_uri": s3_layout.uri(bucket, f"{prefix}/output/"),
        "hyperparameters": {key: str(value) for key, value in hyperparameters.items()},
        "heldout_uri": s3_layout.uri(bucket, heldout_key),
        "production_model_url": production_url,
        "run": run.to_xcom(),
    }
    for which in MODELS:
        output_prefix = f"{prefix}/evaluation/{which}"
        uploaded[f"{which}_output_uri"] = s3_layout.uri(bucket, output_prefix)
        uploaded[f"{which}_output_key"] = sagemaker_configs.transform_output_key(
            output_prefix, heldout_key
        )
    return uploaded


@task.short_circuit(ignore_downstream_trigger_rules=False)
def has_production_model(uploaded: dict[str, Any]) -> bool:
    """No production model yet: nothing to compare with, so no second model or transform."""
    if not uploaded["production_model_url"]:
        log.info("No production model: only the candidate is evaluated")
    return bool(uploaded["production_model_url"])


@task(trigger_rule="none_failed_min_one_success")
def download_results(uploaded: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    """The run with the candidate artefact (for promotion) and each transform's output,
    for `evaluate` to score.

    The run comes through `upload_training_data`: a direct edge from `export`, a setup
    task, would need trigger rule all_success, and the production transform may have
    been skipped.
    """
    run = RetrainRun.from_xcom(uploaded["run"])
    hook, workdir = s3_staging.s3_hook(), run.workdir
    model_artefacts = trained["Training"]["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = hook.parse_s3_url(model_artefacts)
    artefact = s3_staging.download(hook, bucket, key, workdir / "candidate" / "model.tar.gz")
    limit = (run.heldout_papers + 1) * MAX_RESULT_LINE_BYTES
    outputs: dict[str, str | None] = {"candidate": None, "production": None}
    for which in MODELS:
        if which == "production" and not uploaded["production_model_url"]:
            continue  # no production model: its transform was skipped
        key = uploaded[f"{which}_output_key"]
        target = workdir / "evaluation" / f"{which}.jsonl.out"
        outputs[which] = str(s3_staging.download(hook, uploaded["bucket"], key, target, limit))
    return replace(run, artefact=Path(artefact), outputs=outputs).to_xcom()


def _training_job(uploaded: Any) -> SageMakerTrainingOperator:
    return SageMakerTrainingOperator(
        task_id="train",
        config=sagemaker_configs.training_config(
            job_name=job_name(TRAINING_KIND),
            image_uri=variables.template(variables.TRAINING_IMAGE),
            role_arn=variables.template(variables.ROLE),
            train_uri=_UPLOADED + "['train_uri'] }}",
            output_uri=_UPLOADED + "['output_uri'] }}",
            instance_type=instance_type_template("instance_type", DEFAULT_TRAINING_INSTANCE_TYPE),
        )
        # The dict itself (an XComArg resolves unrendered): a template would render to text.
        | {"HyperParameters": uploaded["hyperparameters"]},
        # Status polling only: the training log stays in CloudWatch.
        print_log=False,
        **job_operator_kwargs(default_poll_s=60),
    )


def _evaluation_tasks(which: str, model_data_url: str) -> tuple[Any, Any, Any]:
    """create_<which>_model -> transform_<which> over the held-out papers; the model's
    delete as a teardown. Returns (first task, transform, teardown)."""
    created = SageMakerModelOperator(
        task_id=f"create_{which}_model",
        config=sagemaker_configs.model_config(
            model_name=job_name(f"{which}-model"),
            image_uri=variables.template(variables.IMAGE),
            model_data_url=model_data_url,
            role_arn=variables.template(variables.ROLE),
        ),
    )
    transform = SageMakerTransformOperator(
        task_id=f"transform_{which}",
        config=sagemaker_configs.transform_config(
            job_name=job_name(f"{which}-eval"),
            model_name=_model_name(which),
            input_uri=_UPLOADED + "['heldout_uri'] }}",
            output_uri=_UPLOADED + f"['{which}_output_uri'] }}}}",
            instance_type=instance_type_template("evaluation_instance_type", DEFAULT_INSTANCE_TYPE),
        ),
        max_ingestion_time=2 * 3600,
        **job_operator_kwargs(default_poll_s=30),
    )
    deleted = SageMakerDeleteModelOperator(
        task_id=f"delete_{which}_model",
        config=sagemaker_configs.delete_model_config(_model_name(which)),
    )
    created >> transform >> deleted.as_teardown(setups=created)
    return created, transform, deleted


def sagemaker_training_tasks(exported: Any) -> tuple[TaskGroup, Any, list[Any]]:
    """The `sagemaker` task group; returns (group, download_results, the model teardowns)."""
    with TaskGroup("sagemaker") as group:
        uploaded = upload_training_data(exported)
        trained = _training_job(uploaded)
        candidate, candidate_transform, delete_candidate = _evaluation_tasks(
            "candidate", _TRAINED_MODEL
        )
        production, production_transform, delete_production = _evaluation_tasks(
            "production", _UPLOADED + "['production_model_url'] }}"
        )
        downloaded = download_results(uploaded, trained.output)
        uploaded >> trained >> candidate
        has_production_model(uploaded) >> production
        [candidate_transform, production_transform] >> downloaded
    return group, downloaded, [delete_candidate, delete_production]
