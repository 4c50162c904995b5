"""The retraining flow of `petal_train_model`.

export (setup) -> choose_path -> train_local | sagemaker.{train in SageMaker, then the
candidate and production models label the held-out papers in batch transforms
(training/sagemaker.py)} -> evaluate (both outputs scored on the same held-out papers
by `model.scoring`) -> quality_gate (branch: a paired bootstrap of the gain and the
label churn, `approval.route`) -> auto_promote | approve (a person, ApprovalOperator) |
keep_production -> promote (registers the version, updates the PRODUCTION_MODEL Asset,
which starts `petal_relabel_papers`) -> record_decision (who decided, on what numbers,
in model_versions); cleanup (teardown) always runs. A `sagemaker` run never loads the
model on the worker, so the worker needs only the `airflow` extra.
"""

from __future__ import annotations

import json
import logging
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, Variable, task
from airflow.sdk.exceptions import AirflowFailException

from petal_labeller.airflow import variables
from petal_labeller.airflow.assets import PRODUCTION_MODEL
from petal_labeller.airflow.aws import s3_layout, s3_staging
from petal_labeller.airflow.cleanup_steps import run_cleanup_steps
from petal_labeller.airflow.flow_parts import check_config_task
from petal_labeller.airflow.names import run_digest, run_key, sagemaker_name_prefix
from petal_labeller.airflow.params import (
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_TRAINING_INSTANCE_TYPE,
    max_papers_param,
    optional_instance_type,
    run_params,
    version_param,
)
from petal_labeller.airflow.training import approval
from petal_labeller.airflow.training import sagemaker as training_sagemaker
from petal_labeller.model.config import PRESETS, train_options_schema
from petal_labeller.pipeline.workspace import workspace_for

log = logging.getLogger(__name__)


def training_params() -> dict[str, Param]:
    """The shared run Params, with `model_version` naming the new model, plus the recipe."""
    params = run_params(instance_type=DEFAULT_TRAINING_INSTANCE_TYPE)
    params["model_version"] = version_param(
        "Version name for the new model; empty = v<date>-<run digest>."
    )
    params["max_papers"] = max_papers_param(2, "Use at most this many curator-labelled papers")
    params["dry_run"] = Param(
        False, type="boolean", description="Train and evaluate, but promote nothing."
    )
    params["evaluation_instance_type"] = optional_instance_type(
        DEFAULT_INSTANCE_TYPE, "Instance type of the held-out batch transforms"
    )
    params["preset"] = Param(
        "default", type="string", enum=list(PRESETS), description="Training preset."
    )
    # Every knob typed and bounded (model/config.py BOUNDS); TrainConfig checks again.
    params["train_options"] = Param(
        {}, **train_options_schema(), description='TrainConfig overrides, e.g. {"knn_k": 10}.'
    )
    params.update(approval.approval_params())
    return params


@task
def export(backend: str, **context: Any) -> dict[str, Any]:
    """Write the curator-labelled papers, split into training and held-out, to the workspace,
    and name the production model the candidate is compared with."""
    from petal_labeller.pipeline.training import export_training_set
    from petal_labeller.store.connection import connect
    from petal_labeller.store.models import production_model

    params, dag_run = context["params"], context["dag_run"]
    key = run_key(dag_run.dag_id, dag_run.run_id)
    workspace = workspace_for(key).create()
    exported = export_training_set(workspace.root, limit=params["max_papers"])
    with closing(connect()) as conn:
        production = production_model(conn)
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
        "production": (
            {"version": production.version, "artefact_uri": production.artefact_uri}
            if production
            else None
        ),
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


def _scores_on_worker(exported: dict[str, Any], artefact: str, taxonomy: Any) -> tuple[dict, dict]:
    """The local path: both models label the held-out papers here (the `local` extra);
    (scores, output paths) per model."""
    from petal_labeller.pipeline.infer import local_path
    from petal_labeller.pipeline.training import evaluate as score
    from petal_labeller.pipeline.training import heldout_output

    workdir, heldout = Path(exported["workdir"]), Path(exported["heldout"])
    scores = {"candidate": score(Path(artefact), heldout, taxonomy, workdir), "production": None}
    outputs = {"candidate": str(heldout_output(Path(artefact), workdir)), "production": None}
    production = exported["production"]
    if production:
        uri = production["artefact_uri"]
        if uri.startswith("s3://"):
            hook = s3_staging.s3_hook()
            bucket, key = hook.parse_s3_url(uri)
            uri = str(s3_staging.download(hook, bucket, key, workdir / "prod.tar.gz"))
        scores["production"] = score(local_path(uri), heldout, taxonomy, workdir)
        outputs["production"] = str(heldout_output(local_path(uri), workdir))
    return scores, outputs


def _scores_of_outputs(exported: dict[str, Any], outputs: dict[str, Any], taxonomy: Any):
    """The sagemaker path: score the transforms' outputs here, with numpy alone."""
    from petal_labeller.pipeline.training import score_predictions

    heldout = Path(exported["heldout"])
    return {
        which: score_predictions(Path(path), heldout, taxonomy) if path else None
        for which, path in outputs.items()
    }


@task(trigger_rule="none_failed_min_one_success")
def evaluate(**context: Any) -> dict[str, Any]:
    """Candidate and production model on the same held-out papers, scored by the same
    function whichever backend ran them (XCom: no setup edge)."""
    from petal_labeller.pipeline.training import EvaluationError
    from petal_labeller.store.connection import connect
    from petal_labeller.store.taxonomy import read_taxonomy

    ti = context["ti"]
    exported = ti.xcom_pull(task_ids="export")
    with closing(connect()) as conn:
        taxonomy = read_taxonomy(conn)
    artefact = ti.xcom_pull(task_ids="train_local")
    try:
        if artefact:
            scores, outputs = _scores_on_worker(exported, artefact, taxonomy)
        else:
            downloaded = ti.xcom_pull(task_ids="sagemaker.download_results")
            artefact, outputs = downloaded["artefact"], downloaded["outputs"]
            scores = _scores_of_outputs(exported, outputs, taxonomy)
    except EvaluationError as exc:  # the same output would fail the same way on a retry
        raise AirflowFailException(str(exc)) from exc
    production = exported["production"]
    log.info("Held-out papers: %d", exported["heldout_papers"])
    log.info(
        "Candidate %s: %s", exported["version"], json.dumps(scores["candidate"], sort_keys=True)
    )
    if production:
        log.info(
            "Production %s: %s", production["version"],
            json.dumps(scores["production"], sort_keys=True),
        )  # fmt: skip
    return {
        "version": exported["version"],
        "artefact": artefact,
        "candidate": scores["candidate"],
        "production": scores["production"],
        "production_version": production["version"] if production else None,
        # For the gate's paired bootstrap: each model's checked output, line by paper.
        "outputs": outputs,
        "heldout": exported["heldout"],
        "backend": exported["backend"],
        **{k: exported[k] for k in ("train_papers", "heldout_papers", "reviewed_papers")},
    }


def _comparison(evaluated: dict[str, Any], params: dict[str, Any]):
    """The paired bootstrap on the held-out outputs, plus (local backend) a dry relabel of
    a sample of the papers production labelled in the store."""
    from petal_labeller.pipeline.training import compare_outputs
    from petal_labeller.store.connection import connect
    from petal_labeller.store.taxonomy import read_taxonomy

    with closing(connect()) as conn:
        taxonomy = read_taxonomy(conn)
    outputs = evaluated["outputs"]
    comparison = compare_outputs(
        Path(outputs["candidate"]), Path(outputs["production"]), Path(evaluated["heldout"]),
        taxonomy,
    )  # fmt: skip
    if evaluated["backend"] == "local" and params["store_churn_sample"] > 0:
        from petal_labeller.pipeline.churn import store_churn

        churn = store_churn(
            Path(evaluated["artefact"]),
            evaluated["production_version"],
            params["store_churn_sample"],
        )
        comparison = comparison.with_store_churn(churn)
    return comparison


def _margin(params: dict[str, Any]) -> float:
    """The Param, else the Variable, else 0."""
    if params["gate_margin"] is not None:
        return float(params["gate_margin"])
    return float(Variable.get(approval.GATE_MARGIN_VARIABLE, default=0.0))


@task.branch
def quality_gate(evaluated: dict[str, Any], **context: Any) -> str:
    """Promote, ask a person or keep production, from the gain's 95% interval and the churn;
    the numbers go to the task log and (for the approver) to XCom."""
    from airflow.configuration import conf

    from petal_labeller.model.artefact import read_card
    from petal_labeller.pipeline.training import quality_gate as decide

    params, ti = context["params"], context["ti"]
    first = evaluated["production"] is None
    comparison = None if first else _comparison(evaluated, params)
    margin = _margin(params)
    decision = decide(
        evaluated["candidate"],
        evaluated["production"],
        min_gain=margin,
        comparison=comparison,
        max_churn=float(params["max_churn"]),
    )
    chosen = approval.route(
        decision.promote, decision.ask, params["approval"], first, params["dry_run"]
    )
    log.info("Quality gate: %s -> %s", decision.reason, chosen)
    if comparison is not None:
        log.info("Comparison: %s", json.dumps(comparison.as_dict(), sort_keys=True))
    if params["dry_run"]:
        log.info("Dry run: not promoting %s", evaluated["version"])
    gate = {
        "route": chosen,
        "reason": decision.reason,
        "margin": margin,
        "first": first,
        "comparison": comparison.as_dict() if comparison else None,
    }
    card = read_card(evaluated["artefact"])
    dag_run = context["dag_run"]
    link = approval.card_link(
        conf.get("api", "base_url", fallback="") or "", dag_run.dag_id, dag_run.run_id, ti.task_id
    )
    ti.xcom_push(key="gate", value=gate)
    ti.xcom_push(key="model_card", value=card)
    ti.xcom_push(key="approval_body", value=approval.approval_body(evaluated, gate, link, card))
    return chosen


def approve_task() -> approval.PromotionApproval:
    """The person's yes: Approve promotes; Reject, or the timeout, keeps production."""
    return approval.PromotionApproval(
        task_id=approval.APPROVE,
        subject="PeTaL: promote model {{ ti.xcom_pull(task_ids='evaluate')['version'] }} "
        "to production?",
        body="{{ ti.xcom_pull(task_ids='quality_gate', key='approval_body') }}",
        defaults="Reject",
        # PETAL_ALERT_TO hears that a decision waits, with the Required Actions link.
        notifiers=[approval.DecisionWaiting()],
        # The run's Param replaces it at execute; given here so the provider does not
        # turn the DAG's 8 h execution_timeout into the response timeout (with a warning).
        response_timeout=timedelta(hours=72),
        execution_timeout=None,
        params={
            "comment": Param(
                "", type="string", description="Why; kept with the decision in model_versions."
            )
        },
    )


@task(outlets=[PRODUCTION_MODEL], trigger_rule="none_failed_min_one_success")
def promote(**context: Any) -> dict[str, Any]:
    """Register the version as production; the Asset update starts relabelling.

    Its upstreams are the two ways to a yes (auto_promote, approve); it reads `evaluate`
    from XCom, since an edge from there would let it run when both said no."""
    from petal_labeller.model.artefact import read_card
    from petal_labeller.pipeline.promotion import asset_event_extra
    from petal_labeller.pipeline.training import promote_model

    evaluated = context["ti"].xcom_pull(task_ids="evaluate")
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


def _answer(ti: Any) -> dict[str, Any]:
    """The approver's response, as the approve task kept it ({} when nobody was asked)."""
    return ti.xcom_pull(task_ids=approval.APPROVE, key=approval.ANSWER_KEY) or {}


@task(trigger_rule="none_failed")
def record_decision(**context: Any) -> dict[str, Any] | None:
    """Who decided and on what numbers, on the candidate's model_versions row; a rejected
    (or timed-out) candidate is registered, not production, for `petal model promote`."""
    from petal_labeller.store.connection import connect
    from petal_labeller.store.promotions import record_decision as record

    ti = context["ti"]
    evaluated = ti.xcom_pull(task_ids="evaluate")
    gate = ti.xcom_pull(task_ids="quality_gate", key="gate")
    if gate is None or gate["route"] == approval.KEEP:
        return None  # a dry run, a clearly worse candidate, or `approval: never`
    answer = _answer(ti)
    user = answer.get("responded_by_user") or {}
    promoted = ti.xcom_pull(task_ids="promote") is not None
    if gate["route"] == approval.PROMOTE:
        decision = "first" if gate["first"] else "auto"
    elif promoted:
        decision = "approved"
    elif answer:
        decision = "timed_out" if answer["timedout"] else "rejected"
        _register_rejected(evaluated)
    else:
        return None  # the approval failed: nothing was decided
    by = user.get("name") or user.get("id")
    comment = (answer.get("params_input") or {}).get("comment") or None
    with closing(connect()) as conn:
        record(conn, evaluated["version"], decision, decided_by=by, comment=comment,
               comparison=gate["comparison"])  # fmt: skip
    log.info("Decision on %s: %s%s", evaluated["version"], decision, f" by {by}" if by else "")
    return {"version": evaluated["version"], "decision": decision, "by": by, "comment": comment}


def _register_rejected(evaluated: dict[str, Any]) -> None:
    from petal_labeller.model.artefact import read_card
    from petal_labeller.pipeline.promotion import register_model

    register_model(
        evaluated["version"],
        evaluated["artefact"],
        metrics=evaluated["candidate"],
        base_model=str(read_card(evaluated["artefact"]).get("base_model", "unknown")),
        promote=False,
        verify=False,
    )


def _sagemaker_cleanup_steps(exported: dict[str, Any], dag_id: str, run_id: str) -> list:
    """Delete the run's S3 prefix and every SageMaker model it made; stop any job still running.

    Finished training and transform jobs are records, not resources: SageMaker has no
    delete call for them and bills nothing once they stop.
    """
    from petal_labeller.airflow.aws.sagemaker_cleanup import delete_models, stop_jobs

    def prefix(kind: str) -> str:
        return sagemaker_name_prefix(kind, dag_id, run_id)

    sm = training_sagemaker
    steps: list[tuple[str, Any]] = [
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
            lambda: stop_jobs("training", prefix(sm.TRAINING_KIND)),
        ),
    ]
    for kind in sm.TRANSFORM_KINDS:
        steps.append(
            (f"stop {kind} transform jobs", lambda k=kind: stop_jobs("transform", prefix(k)))
        )
    for kind in sm.MODEL_KINDS:
        steps.append(
            (f"delete {kind}s left by earlier tries", lambda k=kind: delete_models(prefix(k)))
        )
    return steps


@task
def cleanup(exported: dict[str, Any], **context: Any) -> None:
    """Remove the workspace, and for a sagemaker run everything it made there (the promoted
    artefact was copied out); every step is tried."""
    steps = [("remove the workspace", workspace_for(exported["run_key"]).remove)]
    if exported["backend"] == "sagemaker":
        dag_run = context["dag_run"]
        steps += _sagemaker_cleanup_steps(exported, dag_run.dag_id, dag_run.run_id)
    run_cleanup_steps(steps)


def training_flow() -> None:
    """Add the retraining tasks to the DAG being defined (call inside `with DAG(...)`)."""
    # Only a local run loads the model on the worker; a sagemaker run needs the serving
    # image too, for the held-out batch transforms.
    backend = check_config_task((*variables.TRAINING_SAGEMAKER, variables.IMAGE))()
    exported = export(backend)
    route = choose_path(exported)
    local = train_local(exported)
    group, downloaded, model_teardowns = training_sagemaker.sagemaker_training_tasks(exported)
    evaluated = evaluate()
    route >> [local, group]
    [local, downloaded] >> evaluated
    gate = quality_gate(evaluated)
    auto, asked = EmptyOperator(task_id=approval.PROMOTE), approve_task()
    kept = EmptyOperator(task_id=approval.KEEP)
    gate >> [auto, asked, kept]
    promoted = promote()
    [auto, asked] >> promoted
    recorded = record_decision()
    [promoted, kept] >> recorded
    # After the models' own teardowns: cleanup deletes what earlier tries left.
    [recorded, *model_teardowns] >> cleanup(exported).as_teardown(setups=exported)
