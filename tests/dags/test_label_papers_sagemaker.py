"""`petal_label_papers` on the sagemaker backend: the provider's operators against a moto server."""

from __future__ import annotations

import email
import json
from contextlib import closing
from datetime import datetime

import boto3
import pytest

from petal_labeller.store.connection import connect
from tests.fixtures.airflow import AWS_REGION, BUCKET, RUN_DATE_ISO, load_dag

pytestmark = pytest.mark.slow

RUN_DATE = datetime.fromisoformat(RUN_DATE_ISO)
SAGEMAKER = {"backend": "sagemaker", "instance_type": "ml.m5.large"}


def _query(url: str, sql: str) -> list[tuple]:
    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _client(service: str, container):
    return boto3.client(service, endpoint_url=container.endpoint_url, region_name=AWS_REGION)


def _states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_batch_transform_labels_the_papers_and_removes_every_resource(
    airflow_db, labelling_database, petal_home, moto_sagemaker, tmp_path
):
    url = labelling_database
    dag = load_dag("petal_label_papers")

    run = dag.test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    states = _states(run)
    assert run.state == "success", states
    assert states["infer_local"] == "skipped"
    assert states["sagemaker.transform"] == "success"
    assert states["sagemaker.delete_model"] == "success"
    # The transform's wait was deferred: the triggerer's async client polled its status.
    assert any("aiobotocore" in agent for agent in moto_sagemaker.pollers), moto_sagemaker.pollers
    assert len(moto_sagemaker.jobs) == 1
    job = _client("sagemaker", moto_sagemaker).describe_transform_job(
        TransformJobName=moto_sagemaker.jobs[0]
    )
    assert job["BatchStrategy"] == "MultiRecord"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformInput"]["ContentType"] == "application/jsonlines"
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    assert job["TransformResources"]["InstanceType"] == "ml.m5.large"
    assert len(job["TransformJobName"]) <= 63 and job["TransformJobName"].endswith("-t1")
    assert _client("sagemaker", moto_sagemaker).list_models()["Models"] == []
    staged = _client("s3", moto_sagemaker).list_objects_v2(Bucket=BUCKET, Prefix="petal/runs/")
    assert staged.get("KeyCount", 0) == 0, "run staging must be deleted"

    counts = _query(
        url, "SELECT status, papers_selected, papers_labelled, papers_rejected FROM labelling_runs"
    )
    assert counts == [("success", 12, 11, 1)]

    # The same artefact run locally gives the same labels: one inference.py for both.
    from petal_labeller.model.predict import predict_file

    papers = [
        {"paper_id": pid, "title": title, "abstract": abstract, "venue": list(venue), "doi": doi}
        for pid, title, abstract, venue, doi in _query(
            url,
            "SELECT id, title, abstract, venue, doi FROM papers WHERE source <> 'test:bad-text'",
        )
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(p) + "\n" for p in papers))
    artefact = _query(url, "SELECT artefact_uri FROM model_versions WHERE version = 'tiny'")[0][0]
    predict_file(artefact, tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    local = {
        (line["paper_id"], label)
        for line in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
        for label in line["labels"]
    }
    stored = set(_query(url, "SELECT paper_id, label_id FROM paper_labels WHERE origin = 'model'"))
    assert stored == local


def test_failed_transform_fails_the_run_alerts_deletes_the_model_and_writes_no_labels(
    airflow_db, labelling_database, petal_home, moto_sagemaker, smtp_server
):
    url = labelling_database
    moto_sagemaker.fail_with = "CUDA out of memory"
    dag = load_dag("petal_label_papers")

    run = dag.test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    states = _states(run)
    assert run.state == "failed", str(sorted(states.items()))
    assert states["sagemaker.create_model"] == "success"
    assert states["sagemaker.transform"] == "failed"
    assert states["write_labels"] == "upstream_failed"
    assert states["sagemaker.delete_model"] == "success"
    assert states["cleanup"] == "success"
    assert _client("sagemaker", moto_sagemaker).list_models()["Models"] == []
    staged = _client("s3", moto_sagemaker).list_objects_v2(Bucket=BUCKET, Prefix="petal/runs/")
    assert staged.get("KeyCount", 0) == 0

    assert _query(url, "SELECT count(*) FROM paper_labels WHERE origin = 'model'") == [(0,)]
    assert _query(url, "SELECT count(*) FROM paper_labelling") == [(0,)]
    assert _query(url, "SELECT status FROM labelling_runs") == [("failed",)]

    assert len(smtp_server) == 1
    message = email.message_from_bytes(smtp_server[0].original_content)
    assert "sagemaker.transform" in message["Subject"]
    body = message.get_payload()[0].get_payload(decode=True).decode()
    assert "CUDA out of memory" in body


def test_with_deferral_turned_off_the_worker_waits_and_the_run_still_labels(
    airflow_db, labelling_database, petal_home, moto_sagemaker, monkeypatch
):
    """Where no triggerer runs (Variable petal_sagemaker_deferrable=false)."""
    monkeypatch.setenv("AIRFLOW_VAR_PETAL_SAGEMAKER_DEFERRABLE", "False")
    run = load_dag("petal_label_papers").test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    assert run.state == "success", _states(run)
    assert moto_sagemaker.pollers, "the worker polled the transform"
    assert not any("aiobotocore" in agent for agent in moto_sagemaker.pollers)
    counts = _query(labelling_database, "SELECT status, papers_labelled FROM labelling_runs")
    assert counts == [("success", 11)]


def test_a_deferral_variable_that_is_not_yes_or_no_fails_the_run_naming_it(
    airflow_db, labelling_database, petal_home, moto_sagemaker, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_VAR_PETAL_SAGEMAKER_DEFERRABLE", "sometimes")
    run = load_dag("petal_label_papers").test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    states = _states(run)
    assert run.state == "failed" and states["sagemaker.transform"] == "failed", states
    assert moto_sagemaker.jobs == [], "refused before any job was created"
    [(error,)] = _query(labelling_database, "SELECT error FROM labelling_runs")
    assert "petal_sagemaker_deferrable must be true or false" in error, error
    assert _client("sagemaker", moto_sagemaker).list_models()["Models"] == []


def test_with_an_s3_workspace_the_run_stages_in_s3_and_leaves_no_file_or_object(
    airflow_db, labelling_database, petal_home, moto_sagemaker, monkeypatch
):
    """Issue 25: the workspace reached through `aws_default` (ObjectStoragePath)."""
    monkeypatch.setenv("PETAL_WORKSPACE_URL", f"s3://{BUCKET}/workspace/")
    run = load_dag("petal_label_papers").test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    assert run.state == "success", _states(run)
    counts = _query(labelling_database, "SELECT status, papers_labelled FROM labelling_runs")
    assert counts == [("success", 11)]
    listed = _client("s3", moto_sagemaker).list_objects_v2(Bucket=BUCKET)
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert not [k for k in keys if k.startswith(("workspace/runs/", "petal/runs/"))], keys
    [quarantine] = [k for k in keys if k.startswith("workspace/quarantine/")]
    assert quarantine.endswith(".jsonl")
    assert not [p for p in (petal_home / "runs").rglob("*") if p.is_file()]
