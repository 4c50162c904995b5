"""The retraining flow of `petal_train_model`.

export (setup) -> choose_path -> train_local | sagemaker.{upload_training_data ->
train (SageMakerTrainingOperator) -> download_artefact} -> evaluate (candidate and
production on the same held-out papers) -> quality_gate (short-circuit, numbers
in the log) -> promote (registers the version, updates the PRODUCTION_MODEL
Asset, which starts `petal_relabel_papers`); cleanup (teardown) always runs.
"""

from __future__ import annotations

import json
import logging
from contextlib import closing
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.sdk import Param, Variable, task

from petal_labeller.airflow import s3_layout, s3_staging, sagemaker_configs, variables
from petal_labeller.airflow.assets import PRODUCTION_MODEL
from petal_labeller.airflow.cleanup_steps import run_cleanup_steps
from petal_labeller.airflow.flow_parts import (
    check_config_task,
    job_name,
    job_operator_kwargs,
    sagemaker_group,
)
from petal_labeller.airflow.names import run_digest, run_prefix, sagemaker_name_prefix
from petal_labeller.airflow.params import DEFAULT_TRAINING_INSTANCE_TYPE, run_params
from petal_labeller.pipeline.workspace import workspace_for

log = logging.getLogger(__name__)

_UPLOADED = "{{ ti.xcom_pull(task_ids='sagemaker.upload_training_data')"


def training_params() -> dict[str, Param]:
    """The shared run Params, with `model_version` naming the new model, plus the recipe."""
    params = run_params(instance_type=DEFAULT_TRAINING_INSTANCE_TYPE)
    params["model_version"] = Param(
        None,
        type=["null", "string"],
        description="Version name for the new model; empty = v<date>-<run digest>.",
    )
    params["max_papers"] = Param(
        None,
        type=["null", "integer"],
        minimum=2,
        description="Use at most this many curator-labelled papers; empty = all.",
    )
    params["dry_run"] = Param(
        False, type="boolean", description="Train and evaluate, but promote nothing."
    )
    params["preset"] = Param("default", type="string", description="Training preset.")
    params["train_options"] = Param(
        {}, type="object", description='TrainConfig overrides, e.g. {"knn_k": 10}.'
    )
    return params


@task
def export(backend: str, **context: Any) -> dict[str, Any]:
    """Write the curator-labelled papers, split into training and held-out, to the workspace."""
    from petal_labeller.pipeline.training import export_training_set

    params, dag_run = context["params"], context["dag_run"]
    key = run_prefix(dag_run.dag_id, dag_run.run_id)
    workspace = workspace_for(key).create()
    exported = export_training_set(workspace.root, limit=params["max_papers"])
    # A manual run may have no logical date (the REST API's default): name it by run_after.
    version = params["model_version"] or (
        f"v{context.get('logical_date') or dag_run.run_after:%Y%m%d}-"
        f"{run_digest(dag_run.dag_id, dag_run.run_id, 6)}"
    )
    log.info(
        "Exported %d training and %d held-out papers for model %s",
        exported.train_papers, exported.heldout_papers, version,
    )  # fmt: skip
    log.info(
        "Training on %d papers reviewed by curators (petal review apply)",
        exported.reviewed_papers,
    )
    return {
        "backend": backend,
        "run_key": key,
        "workdir": str(workspace.root),
        "train_dir": str(exported.train_dir),
        "heldout": str(exported.heldout_path),
        "train_papers": exported.train_papers,
        "heldout_papers": exported.heldout_papers,
        "reviewed_papers": exported.reviewed_papers,
        "version": version,
    }


@task.branch
def choose_path(exported: dict[str, Any]) -> str:
    return "train_local" if exported["backend"] == "local" else "sagemaker.upload_training_data"


@task
def train_local(exported: dict[str, Any], **context: Any) -> str:
    """The training entry point's library call, on the worker."""
    from petal_labeller.model.config import preset
    from petal_labeller.model.train import train_artefact

    params = context["params"]
    train_dir = Path(exported["train_dir"])
    artefact = train_artefact(
        train_dir / "papers.jsonl",
        train_dir / "taxonomy.json",
        Path(exported["workdir"]) / "candidate",
        preset(params["preset"], **params["train_options"]),
        progress=False,
        version=exported["version"],
        # The workspace is deleted after the run; the gate's numbers go to the task log.
        report=False,
    )
    return str(artefact)


@task
def upload_training_data(exported: dict[str, Any], **context: Any) -> dict[str, Any]:
    """The `train` channel in S3, and the hyperparameters as SageMaker wants them."""
    hook = s3_staging.s3_hook()
    bucket = Variable.get(variables.BUCKET)
    prefix = s3_layout.training_prefix(exported["run_key"])
    for name in ("papers.jsonl", "taxonomy.json"):
        s3_staging.upload(
            hook, Path(exported["train_dir"]) / name, bucket, f"{prefix}/train/{name}"
        )
    params = context["params"]
    hyperparameters = {"preset": params["preset"], **params["train_options"]}
    return {
        "bucket": bucket,
        "prefix": prefix,
        "train_uri": s3_layout.uri(bucket, f"{prefix}/train/"),
        "output_uri": s3_layout.uri(bucket, f"{prefix}/output/"),
        "hyperparameters": {key: str(value) for key, value in hyperparameters.items()},
    }


@task
def download_artefact(exported: dict[str, Any], **context: Any) -> str:
    trained = context["ti"].xcom_pull(task_ids="sagemaker.train")["Training"]
    bucket, key = s3_staging.s3_hook().parse_s3_url(trained["ModelArtifacts"]["S3ModelArtifacts"])
    target = Path(exported["workdir"]) / "candidate" / "model.tar.gz"
    return str(s3_staging.download(s3_staging.s3_hook(), bucket, key, target))


@task(trigger_rule="none_failed_min_one_success")
def evaluate(**context: Any) -> dict[str, Any]:
    """Candidate and production model on the same held-out papers (XCom: no setup edge)."""
    from petal_labeller.pipeline.infer import local_path
    from petal_labeller.pipeline.training import evaluate as score
    from petal_labeller.store.connection import connect
    from petal_labeller.store.models import production_model
    from petal_labeller.store.taxonomy import read_taxonomy

    ti = context["ti"]
    exported = ti.xcom_pull(task_ids="export")
    artefact = ti.xcom_pull(task_ids="train_local") or ti.xcom_pull(
        task_ids="sagemaker.download_artefact"
    )
    with closing(connect()) as conn:
        taxonomy = read_taxonomy(conn)
        production = production_model(conn)
    workdir, heldout = Path(exported["workdir"]), Path(exported["heldout"])
    candidate = score(Path(artefact), heldout, taxonomy, workdir)
    current = None
    if production is not None:
        uri = production.artefact_uri
        if uri.startswith("s3://"):
            bucket, key = s3_staging.s3_hook().parse_s3_url(uri)
            uri = str(
                s3_staging.download(s3_staging.s3_hook(), bucket, key, workdir / "prod.tar.gz")
            )
        current = score(local_path(uri), heldout, taxonomy, workdir)
    log.info("Held-out papers: %d", exported["heldout_papers"])
    log.info("Candidate %s: %s", exported["version"], json.dumps(candidate, sort_keys=True))
    if production is not None:
        log.info("Production %s: %s", production.version, json.dumps(current, sort_keys=True))
    return {
        "version": exported["version"],
        "artefact": artefact,
        "candidate": candidate,
        "production": current,
        "production_version": production.version if production else None,
    }


@task.short_circuit(ignore_downstream_trigger_rules=False)
def quality_gate(evaluated: dict[str, Any], **context: Any) -> bool:
    """Promote only if the candidate beats production; the numbers go to the task log."""
    from petal_labeller.pipeline.training import quality_gate as decide

    decision = decide(evaluated["candidate"], evaluated["production"])
    log.info("Quality gate: %s -> %s", decision.reason, "PROMOTE" if decision.promote else "KEEP")
    if decision.promote and context["params"]["dry_run"]:
        log.info("Dry run: not promoting %s", evaluated["version"])
        return False
    return decision.promote


@task(outlets=[PRODUCTION_MODEL])
def promote(evaluated: dict[str, Any], **context: Any) -> dict[str, Any]:
    """Register the version as production; the Asset update starts relabelling."""
    from petal_labeller.model.artefact import read_card
    from petal_labeller.pipeline.promotion import asset_event_extra
    from petal_labeller.pipeline.training import promote_model

    card = read_card(evaluated["artefact"])
    model = promote_model(
        evaluated["version"],
        Path(evaluated["artefact"]),
        evaluated["candidate"],
        base_model=str(card.get("base_model", "unknown")),
    )
    context["outlet_events"][PRODUCTION_MODEL].extra = asset_event_extra(
        model.version, evaluated["production_version"]
    )
    log.info("Promoted %s (was %s)", model.version, evaluated["production_version"])
    return {"version": model.version, "artefact_uri": model.artefact_uri}


@task
def cleanup(exported: dict[str, Any], **context: Any) -> None:
    """Remove the workspace and the S3 training data (the promoted artefact was copied
    out) and stop any training job still running; every step is tried."""
    steps = [("remove the workspace", workspace_for(exported["run_key"]).remove)]
    if exported["backend"] == "sagemaker":
        from petal_labeller.airflow.sagemaker_cleanup import stop_training_jobs

        dag_run = context["dag_run"]
        steps += [
            (
                "delete the S3 training data",
                lambda: s3_staging.delete_prefix(
                    s3_staging.s3_hook(),
                    Variable.get(variables.BUCKET),
                    s3_layout.training_prefix(exported["run_key"]),
                ),
            ),
            (
                "stop training jobs still running",
                lambda: stop_training_jobs(
                    sagemaker_name_prefix("train", dag_run.dag_id, dag_run.run_id)
                ),
            ),
        ]
    run_cleanup_steps(steps)


def _sagemaker_tasks(exported: Any) -> tuple[Any, Any]:
    def train() -> Any:
        return SageMakerTrainingOperator(
            task_id="train",
            config=sagemaker_configs.training_config(
                job_name=job_name("train"),
                image_uri=variables.template(variables.TRAINING_IMAGE),
                role_arn=variables.template(variables.ROLE),
                train_uri=_UPLOADED + "['train_uri'] }}",
                output_uri=_UPLOADED + "['output_uri'] }}",
                instance_type="{{ params.instance_type }}",
            )
            | {"HyperParameters": _UPLOADED + "['hyperparameters'] }}"},
            # Status polling only: the training log stays in CloudWatch.
            print_log=False,
            **job_operator_kwargs(default_poll_s=60),
        )

    group, _, downloaded = sagemaker_group(
        lambda: upload_training_data(exported), train, lambda: download_artefact(exported)
    )
    return group, downloaded


def training_flow() -> None:
    """Add the retraining tasks to the DAG being defined (call inside `with DAG(...)`)."""
    # Either backend evaluates the candidate on the worker (`evaluate`): both need the model.
    backend = check_config_task(variables.TRAINING_SAGEMAKER, ("local", "sagemaker"))()
    exported = export(backend)
    route = choose_path(exported)
    local = train_local(exported)
    group, downloaded = _sagemaker_tasks(exported)
    evaluated = evaluate()
    route >> [local, group]
    [local, downloaded] >> evaluated
    promoted = promote(evaluated)
    quality_gate(evaluated) >> promoted
    promoted >> cleanup(exported).as_teardown(setups=exported)
