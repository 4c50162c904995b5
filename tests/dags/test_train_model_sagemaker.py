"""`petal_train_model` on the sagemaker backend against a moto server: the training job and
the held-out batch transforms run through the provider's operators, the fake container of
tests/fixtures/airflow.py plays SageMaker's containers, and the worker only scores."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime

import boto3
import pytest

from petal_labeller.store.connection import connect
from tests.fixtures.airflow import AWS_REGION, BUCKET, TINY_TRAINING, load_dag

pytestmark = pytest.mark.slow


def _run(model_version: str):
    return load_dag("petal_train_model").test(
        logical_date=datetime(2026, 11, 22, tzinfo=UTC),
        run_conf={
            "backend": "sagemaker",
            "model_version": model_version,
            "instance_type": "ml.m5.xlarge",
            "evaluation_instance_type": "ml.c5.large",
            "train_options": TINY_TRAINING,
            "dry_run": False,
            # Nobody answers under dag.test(): only a clearly better candidate is promoted
            # (tests/dags/test_train_model_approval.py asks and answers).
            "approval": "never",
        },
    )


def _client(service: str, container):
    return boto3.client(service, endpoint_url=container.endpoint_url, region_name=AWS_REGION)


def _xcom(run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value"
    )
    with create_session() as session:
        return XComModel.deserialize_value(session.scalars(query).one())


def _kinds(container) -> list[str]:
    """The jobs the run started, by kind: `petal-<kind>-<run digest>-t<try>`."""
    return sorted(name.removeprefix("petal-").rsplit("-", 2)[0] for name in container.jobs)


def _nothing_left(container) -> None:
    """No SageMaker model and no staged object outlive the run."""
    assert _client("sagemaker", container).list_models()["Models"] == []
    staged = _client("s3", container).list_objects_v2(Bucket=BUCKET, Prefix="petal/training/")
    assert staged.get("KeyCount", 0) == 0, "training data staged in S3 must be deleted"


def test_first_model_is_trained_and_evaluated_in_sagemaker_and_promoted(
    airflow_db, curated_database, petal_home, moto_sagemaker
):
    run = _run("sm-1")

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states["train_local"] == "skipped"
    assert states["sagemaker.train"] == "success"
    assert states["sagemaker.transform_candidate"] == "success"
    assert states["sagemaker.delete_candidate_model"] == "success"
    # No production model: nothing to compare with, no second model or transform.
    assert states["sagemaker.create_production_model"] == "skipped"
    assert states["sagemaker.transform_production"] == "skipped"
    assert states["promote"] == "success"
    assert _kinds(moto_sagemaker) == ["candidate-eval", "train"]
    sagemaker = _client("sagemaker", moto_sagemaker)
    (job_name,) = [name for name in moto_sagemaker.jobs if name.startswith("petal-train-")]
    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    assert job["HyperParameters"] == {
        "preset": "default",
        **{key: str(value) for key, value in TINY_TRAINING.items()},
    }
    assert job["InputDataConfig"][0]["ChannelName"] == "train"
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert len(job_name) <= 63 and job_name.endswith("-t1")
    (transform_name,) = [n for n in moto_sagemaker.jobs if n.startswith("petal-candidate-eval-")]
    transform = sagemaker.describe_transform_job(TransformJobName=transform_name)
    assert transform["TransformResources"]["InstanceType"] == "ml.c5.large"
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].endswith(
        "/evaluation/input/heldout.jsonl"
    )
    with closing(connect(curated_database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT version, is_production, artefact_uri, metrics FROM model_versions")
        ((version, production, artefact, metrics),) = cur.fetchall()
    assert (version, production) == ("sm-1", True)
    assert artefact.startswith(str(petal_home / "models" / "sm-1"))
    assert metrics == _xcom(run, "evaluate")["candidate"]
    assert 0 < metrics["papers"] < 60  # the held-out papers only
    _nothing_left(moto_sagemaker)


def test_the_gate_compares_both_models_as_scored_on_the_worker(
    airflow_db, curated_with_tiny_production, petal_home, moto_sagemaker, tiny_model_tar,
    tmp_path, monkeypatch,
):  # fmt: skip
    """Scored in SageMaker, both models get the numbers the local path gives them."""
    from petal_labeller.pipeline.training import evaluate, export_training_set
    from petal_labeller.store.taxonomy import read_taxonomy

    curated_database = curated_with_tiny_production
    with closing(connect(curated_database)) as conn:
        taxonomy = read_taxonomy(conn)
    # Keep a copy of each model the fake container is handed (the run deletes them all).
    served: dict[str, object] = {}
    label_with = moto_sagemaker.run

    def run_and_keep_model(job, model):
        bucket, _, key = model.primary_container["ModelDataUrl"][5:].partition("/")
        kept = tmp_path / f"{job.transform_job_name}.tar.gz"
        moto_sagemaker.s3().download_file(bucket, key, str(kept))
        served[job.transform_job_name.split("-")[1]] = kept
        label_with(job, model)

    monkeypatch.setattr(moto_sagemaker, "run", run_and_keep_model)

    run = _run("sm-2")

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["evaluate"] == "success", states
    assert _kinds(moto_sagemaker) == ["candidate-eval", "production-eval", "train"]
    assert states["sagemaker.delete_production_model"] == "success"
    assert tiny_model_tar.read_bytes() == served["production"].read_bytes()
    heldout = export_training_set(tmp_path / "expected", database_url=curated_database)
    expected = {
        which: evaluate(served[which], heldout.heldout_path, taxonomy, tmp_path)
        for which in ("candidate", "production")
    }
    evaluated = _xcom(run, "evaluate")
    for which in ("candidate", "production"):
        assert evaluated[which] == pytest.approx(expected[which], abs=1e-3), which
    assert evaluated["production_version"] == "tiny"
    # The gate decides on the paired bootstrap of both outputs; the point gain is only logged.
    promoted = states["auto_promote"] == "success"
    assert states["promote"] == ("success" if promoted else "skipped")
    assert states["approve"] == "skipped"
    assert states["keep_production"] == ("skipped" if promoted else "success")
    assert run.state == "success", states
    _nothing_left(moto_sagemaker)
