"""`petal_train_model` on the sagemaker backend: SageMakerTrainingOperator against a moto server."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime

import boto3
import pytest

from petal_labeller.store.connection import connect
from tests.fixtures.airflow import AWS_REGION, BUCKET, TINY_TRAINING, load_dag

pytestmark = pytest.mark.slow


def test_training_job_result_is_evaluated_and_promoted(
    airflow_db, curated_database, petal_home, moto_sagemaker
):
    dag = load_dag("petal_train_model")

    run = dag.test(
        logical_date=datetime(2026, 11, 22, tzinfo=UTC),
        run_conf={
            "backend": "sagemaker",
            "model_version": "sm-1",
            "instance_type": "ml.m5.xlarge",
            "train_options": TINY_TRAINING,
            "dry_run": False,
        },
    )

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states["train_local"] == "skipped"
    assert states["sagemaker.train"] == "success"
    assert states["promote"] == "success"
    sagemaker = boto3.client(
        "sagemaker", endpoint_url=moto_sagemaker.endpoint_url, region_name=AWS_REGION
    )
    (job_name,) = moto_sagemaker.jobs
    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    assert job["HyperParameters"] == {
        "preset": "default",
        **{key: str(value) for key, value in TINY_TRAINING.items()},
    }
    assert job["InputDataConfig"][0]["ChannelName"] == "train"
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert len(job_name) <= 63 and job_name.endswith("-t1")
    with closing(connect(curated_database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT version, is_production, artefact_uri FROM model_versions")
        ((version, production, artefact),) = cur.fetchall()
    assert (version, production) == ("sm-1", True)
    assert artefact.startswith(str(petal_home / "models" / "sm-1"))
    s3 = boto3.client("s3", endpoint_url=moto_sagemaker.endpoint_url, region_name=AWS_REGION)
    staged = s3.list_objects_v2(Bucket=BUCKET, Prefix="petal/training/")
    assert staged.get("KeyCount", 0) == 0, "training data staged in S3 must be deleted"
