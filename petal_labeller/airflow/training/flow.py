"""The retraining flow of `petal_train_model`.

check_config -> enough_curated (a run the curated-papers Asset started goes on only
with enough new curated papers) -> export (setup) -> choose_path -> train_local |
sagemaker.{train in SageMaker, then the candidate and production models label the
held-out papers in batch transforms (training/sagemaker.py)} -> evaluate (both
outputs scored on the same held-out papers by `model.scoring`) -> quality_gate
(branch: a paired bootstrap of the gain and the label churn, `approval.route`) ->
auto_promote | approve (a person, ApprovalOperator) | keep_production -> promote
(registers the version, updates the PRODUCTION_MODEL Asset, which starts
`petal_relabel_papers`) -> record_decision (who decided, on what numbers, in
model_versions); cleanup (teardown) always runs. A `sagemaker` run never loads the
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
from petal_labeller.airflow.aws import run_cleanup, s3_staging
from petal_labeller.airflow.cleanup_steps import run_cleanup_steps
from petal_labeller.airflow.flow_parts import check_config_task
from petal_labeller.airflow.names import run_digest, run_key
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
from petal_labeller.pipeline.retrain import Evaluation, RetrainRun

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


MAX_MIN_CURATED = 1_000_000


def parse_min_curated(raw: Any) -> int:
    """Variable `petal_retrain_min_curated`: a whole number of papers, 1 to a million;
    empty or unset is the default. ValueError names the Variable otherwise."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return variables.RETRAIN_MIN_CURATED_DEFAULT
    if not (len(text) <= 7 and text.isascii() and text.isdigit()
            and 1 <= int(text) <= MAX_MIN_CURATED):  # fmt: skip
        raise ValueError(
            f"Airflow Variable {variables.RETRAIN_MIN_CURATED!r} must be a whole number "
            f"of papers from 1 to {MAX_MIN_CURATED:,}, not {text[:40]!r}"
        )
    return int(text)


@task.short_circuit
def enough_curated(**context: Any) -> bool:
    """A run the `petal_curated_papers` Asset started (a review batch was applied) trains
    only once the papers curated since the production model was registered reach
    `petal_retrain_min_curated`; weekly and manual runs always train."""
    from petal_labeller.store.connection import connect
    from petal_labeller.store.models import production_model
    from petal_labeller.store.reviews import papers_reviewed_since

    run_type = context["dag_run"].run_type
    if getattr(run_type, "value", run_type) != "asset_triggered":
        return True
    try:
        needed = parse_min_curated(Variable.get(variables.RETRAIN_MIN_CURATED, default=None))
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc
    with closing(connect()) as conn:
        production = production_model(conn)
        curated = papers_reviewed_since(conn, production.created_at if production else None)
    log.info(
        "%d papers curated since %s; a retrain needs %d",
        curated, f"model {production.version}" if production else "ever", needed,
    )  # fmt: skip
    return curated >= needed


@task
def export(backend: str, **context: Any) -> dict[str, Any]:
    """Write the training and held-out papers to the run's workspace (`retrain.export_run`)."""
    from petal_labeller.pipeline.retrain import export_run

    params, dag_run = context["params"], context["dag_run"]
    # A manual run may have no logical date (the REST API's default): name it by run_after.
    version = params["model_version"] or (
        f"v{context.get('logical_date') or dag_run.run_after:%Y%m%d}-"
        f"{run_digest(dag_run.dag_id, dag_run.run_id, 6)}"
    )
    key = run_key(dag_run.dag_id, dag_run.run_id)
    return export_run(key, version, backend, max_papers=params["max_papers"]).to_xcom()


@task.branch
def choose_path(exported: dict[str, Any]) -> str:
    return "train_local" if exported["backend"] == "local" else "sagemaker.upload_training_data"


@task
def train_local(exported: dict[str, Any], **context: Any) -> dict[str, Any]:
    """The training entry point's library call, on the worker; the run with its artefact."""
    from petal_labeller.pipeline.retrain import train_run

    params = context["params"]
    run = RetrainRun.from_xcom(exported)
    return train_run(run, params["preset"], params["train_options"]).to_xcom()


def _fetch_s3(uri: str, target: Path) -> Path:
    """An `s3://` artefact to `target`, through the `aws_default` connection."""
    hook = s3_staging.s3_hook()
    bucket, key = hook.parse_s3_url(uri)
    return s3_staging.download(hook, bucket, key, target)


#: The task that leaves the trained run, by backend (the branch skips the other).
TRAINED_BY = {"local": "train_local", "sagemaker": "sagemaker.download_results"}


@task(trigger_rule="none_failed_min_one_success")
def evaluate(**context: Any) -> dict[str, Any]:
    """Candidate and production model on the same held-out papers (`retrain.evaluate_run`):
    the run as `train_local` or `sagemaker.download_results` left it.

    Pulls only the chosen path's XCom: pulling the skipped task's logs an
    "XCom not found" error in every run. No edge from `export`, a setup task: its
    downstreams must have trigger rule all_success.
    """
    from petal_labeller.pipeline.retrain import evaluate_run
    from petal_labeller.pipeline.training import EvaluationError

    ti = context["ti"]
    backend = ti.xcom_pull(task_ids="export")["backend"]
    run = RetrainRun.from_xcom(ti.xcom_pull(task_ids=TRAINED_BY[backend]) or {})
    try:
        return evaluate_run(run, fetch=_fetch_s3).to_xcom()
    except EvaluationError as exc:  # the same output would fail the same way on a retry
        raise AirflowFailException(str(exc)) from exc


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

    from petal_labeller.pipeline.retrain import gate_run

    params, ti = context["params"], context["ti"]
    evaluation = Evaluation.from_xcom(evaluated)
    margin = _margin(params)
    decision, comparison = gate_run(
        evaluation,
        margin=margin,
        max_churn=float(params["max_churn"]),
        store_churn_sample=params["store_churn_sample"],
    )
    first = evaluation.first
    chosen = approval.route(
        decision.promote, decision.ask, params["approval"], first, params["dry_run"]
    )
    log.info("Quality gate: %s -> %s", decision.reason, chosen)
    if comparison is not None:
        log.info("Comparison: %s", json.dumps(comparison.as_dict(), sort_keys=True))
    if params["dry_run"]:
        log.info("Dry run: not promoting %s", evaluation.version)
    gate = {
        "route": chosen,
        "reason": decision.reason,
        "margin": margin,
        "first": first,
        "comparison": comparison.as_dict() if comparison else None,
    }
    card = evaluation.card()
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
    from petal_labeller.pipeline.promotion import asset_event_extra
    from petal_labeller.pipeline.retrain import promote_run

    evaluation = Evaluation.from_xcom(context["ti"].xcom_pull(task_ids="evaluate"))
    model = promote_run(evaluation)
    context["outlet_events"][PRODUCTION_MODEL].extra = asset_event_extra(
        model.version, evaluation.production_version
    )
    log.info("Promoted %s (was %s)", model.version, evaluation.production_version)
    return {"version": model.version, "artefact_uri": model.artefact_uri}


def _answer(ti: Any) -> dict[str, Any]:
    """The approver's response, as the approve task kept it ({} when nobody was asked)."""
    return ti.xcom_pull(task_ids=approval.APPROVE, key=approval.ANSWER_KEY) or {}


def _decision(gate: dict[str, Any], answer: dict[str, Any], promoted: bool) -> str | None:
    """What was decided (`store.promotions.DECISIONS`), or None when nothing was."""
    if gate["route"] == approval.PROMOTE:
        return "first" if gate["first"] else "auto"
    if promoted:
        return "approved"
    if answer:
        return "timed_out" if answer["timedout"] else "rejected"
    return None  # the approval failed: nothing was decided


@task(trigger_rule="none_failed")
def record_decision(
    evaluated: dict[str, Any], promoted: dict[str, Any] | None, **context: Any
) -> dict[str, Any] | None:
    """Who decided and on what numbers, on the candidate's model_versions row; a rejected
    (or timed-out) candidate is registered, not production, for `petal model promote`.

    The gate's numbers and the approver's answer are read from XCom: an edge from the
    branch or the approval would skip this task with them."""
    from petal_labeller.pipeline.retrain import record_decision as record

    ti = context["ti"]
    gate = ti.xcom_pull(task_ids="quality_gate", key="gate")
    if gate is None or gate["route"] == approval.KEEP:
        return None  # a dry run, a clearly worse candidate, or `approval: never`
    answer = _answer(ti)
    decision = _decision(gate, answer, promoted is not None)
    if decision is None:
        return None
    evaluation = Evaluation.from_xcom(evaluated)
    user = answer.get("responded_by_user") or {}
    by = user.get("name") or user.get("id")
    comment = (answer.get("params_input") or {}).get("comment") or None
    record(evaluation, decision, decided_by=by, comment=comment, comparison=gate["comparison"])
    log.info("Decision on %s: %s%s", evaluation.version, decision, f" by {by}" if by else "")
    return {"version": evaluation.version, "decision": decision, "by": by, "comment": comment}


@task
def cleanup(exported: dict[str, Any], **context: Any) -> None:
    """Remove the workspace, and for a sagemaker run what it made there (the promoted
    artefact was copied out); every step is tried, AWS only for what the run's tasks
    may have created (`run_cleanup`, the design labelling's cleanup shares)."""
    run = RetrainRun.from_xcom(exported)
    steps = [("remove the workspace", run.workspace.remove)]
    if run.backend == "sagemaker":
        steps += run_cleanup.cleanup_steps(
            training_sagemaker.RESOURCES, context, bucket=lambda: Variable.get(variables.BUCKET)
        )
    run_cleanup_steps(steps)


def training_flow() -> None:
    """Add the retraining tasks to the DAG being defined (call inside `with DAG(...)`)."""
    # Only a local run loads the model on the worker; a sagemaker run needs the serving
    # image too, for the held-out batch transforms.
    backend = check_config_task((*variables.TRAINING_SAGEMAKER, variables.IMAGE))()
    exported = export(backend)
    backend >> enough_curated() >> exported
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
    recorded = record_decision(evaluated, promoted)
    [promoted, kept] >> recorded
    # After the models' own teardowns: cleanup deletes what earlier tries left.
    [recorded, *model_teardowns] >> cleanup(exported).as_teardown(setups=exported)
