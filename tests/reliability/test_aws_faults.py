"""S3 and SageMaker misbehave (throttling, 5xx, a failed job, a job that never ends):
transient errors are retried with backoff, lasting ones fail the run clearly, every
resource the run made is removed, an alert goes out, and no label is half written.

AWS is a moto server behind `faultproxy.FaultProxy`, which answers chosen calls
with the errors AWS sends; everything of ours runs for real under `dag.test()`.
"""

from __future__ import annotations

import email
import json
from datetime import datetime, timedelta

import boto3
import pytest

from tests.fixtures.airflow import AWS_REGION, BUCKET, RUN_DATE_ISO, load_dag
from tests.reliability.conftest import query
from tests.reliability.faultproxy import FaultProxy, Rule

pytestmark = pytest.mark.slow

RUN_DATE = datetime.fromisoformat(RUN_DATE_ISO)
SAGEMAKER = {"backend": "sagemaker", "instance_type": "ml.m5.large"}
#: Client retries as a deployment should set them on `aws_default` (see docs/reliability.md).
RETRIES = {"mode": "standard", "max_attempts": 4}


@pytest.fixture
def proxy(moto_sagemaker, monkeypatch):
    """The fault proxy in front of moto, made the `aws_default` endpoint."""
    fault_proxy = FaultProxy(moto_sagemaker.endpoint_url)
    url = fault_proxy.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {
                    "endpoint_url": url,
                    "region_name": AWS_REGION,
                    "config_kwargs": {"retries": RETRIES},
                },
            }
        ),
    )
    try:
        yield fault_proxy
    finally:
        fault_proxy.stop()


def _client(service: str, container):
    return boto3.client(service, endpoint_url=container.endpoint_url, region_name=AWS_REGION)


def _states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _no_resources_left(container) -> None:
    assert _client("sagemaker", container).list_models()["Models"] == []
    staged = _client("s3", container).list_objects_v2(Bucket=BUCKET, Prefix="petal/runs/")
    assert staged.get("KeyCount", 0) == 0, "run staging must be deleted"


def _no_labels(url: str) -> None:
    assert query(url, "SELECT count(*) FROM paper_labels WHERE origin = 'model'") == [(0,)]
    assert query(url, "SELECT count(*) FROM paper_labelling") == [(0,)]
    assert query(url, "SELECT status FROM labelling_runs") == [("failed",)]


def _alert(smtp_server) -> tuple[str, str]:
    assert len(smtp_server) == 1, "exactly one alert"
    message = email.message_from_bytes(smtp_server[0].original_content)
    return message["Subject"], message.get_payload()[0].get_payload(decode=True).decode()


def _jobs_never_finish(kind: str, container, proxy, monkeypatch) -> None:
    """`kind` ("transform" or "training") jobs stay InProgress; their stop call is answered.

    moto has no StopTransformJob/StopTrainingJob: the proxy answers it as AWS
    does, so the stop request can be seen.
    """
    from moto.sagemaker.models import SageMakerModelBackend

    create = getattr(SageMakerModelBackend, f"create_{kind}_job")

    def create_stuck_job(backend, *args, **kwargs):
        job = create(backend, *args, **kwargs)
        setattr(job, f"{kind}_job_status", "InProgress")
        job.failure_reason = None
        return job

    container.fail_with = "never run: the job stays InProgress"  # skips the container
    monkeypatch.setattr(SageMakerModelBackend, f"create_{kind}_job", create_stuck_job)
    proxy.canned[f"sagemaker:Stop{kind.capitalize()}Job"] = {}


def _first(operation: str):
    return lambda op: op.startswith(operation)


def test_transient_throttling_and_5xx_are_retried_and_the_run_completes(
    airflow_db, labelling_database, petal_home, moto_sagemaker, proxy
):
    url = labelling_database
    # The first call of each kind the run makes fails once, the way AWS does under load.
    proxy.rules = [
        Rule(_first("s3:PUT"), "SlowDown", times=2),
        Rule(_first("sagemaker:CreateModel"), "ThrottlingException"),
        Rule(_first("sagemaker:CreateTransformJob"), "ServiceUnavailable"),
        Rule(_first("sagemaker:DescribeTransformJob"), "ThrottlingException"),
        Rule(_first("s3:GET"), "InternalError"),
        Rule(_first("sagemaker:DeleteModel"), "InternalFailure"),
        Rule(_first("s3:POST"), "SlowDown"),  # DeleteObjects in cleanup
    ]

    run = load_dag("petal_label_papers").test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    assert run.state == "success", _states(run)
    injected = proxy.injected()
    assert len(injected) >= 7, [call.operation for call in injected]
    operations = proxy.operations()
    for call in injected:  # each failed call was made again, after a pause
        later = [c for c in proxy.calls if c.operation == call.operation and c.at > call.at]
        assert later, f"{call.operation} was not retried"
    assert query(url, "SELECT status, papers_labelled FROM labelling_runs") == [("success", 11)]
    assert query(url, "SELECT count(*) FROM paper_labelling") == [(11,)]
    assert "sagemaker:DeleteModel" in operations
    _no_resources_left(moto_sagemaker)


def test_lasting_5xx_fails_the_run_clearly_cleans_up_and_alerts(
    airflow_db, labelling_database, petal_home, moto_sagemaker, proxy, smtp_server
):
    proxy.rules = [Rule(_first("sagemaker:CreateTransformJob"), "InternalFailure", times=None)]

    run = load_dag("petal_label_papers").test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    states = _states(run)
    assert run.state == "failed", states
    assert states["sagemaker.transform"] == "failed"
    assert states["sagemaker.delete_model"] == "success"
    assert states["cleanup"] == "success"
    attempts = proxy.operations().count("sagemaker:CreateTransformJob")
    # botocore's `max_attempts` counts retries: the first call plus four more.
    assert attempts == RETRIES["max_attempts"] + 1, "the client retries, then gives up"
    _no_resources_left(moto_sagemaker)
    _no_labels(labelling_database)
    subject, body = _alert(smtp_server)
    assert "sagemaker.transform" in subject
    assert "InternalFailure" in body and "reached max retries" in body


def test_model_created_by_a_failed_try_is_deleted_too(
    airflow_db, labelling_database, petal_home, moto_sagemaker, proxy
):
    # CreateModel works but every reply of the first try is lost: the try fails with
    # its model created, and the retry creates another under its own name.
    attempts = RETRIES["max_attempts"] + 1
    proxy.rules = [
        Rule(_first("sagemaker:CreateModel"), "InternalFailure", times=attempts, forward=True)
    ]
    dag = load_dag("petal_label_papers")
    create_model = dag.get_task("sagemaker.create_model")
    create_model.retries, create_model.retry_delay = 1, timedelta(0)

    run = dag.test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    assert run.state == "success", _states(run)
    assert proxy.operations().count("sagemaker:CreateModel") == attempts + 1
    assert query(labelling_database, "SELECT status FROM labelling_runs") == [("success",)]
    _no_resources_left(moto_sagemaker)  # both tries' models, not only the last one


def test_transform_that_never_finishes_times_out_cleans_up_and_alerts(
    airflow_db, labelling_database, petal_home, moto_sagemaker, proxy, smtp_server, monkeypatch
):
    # The worker-side wait's own timeout (max_ingestion_time); a deferred wait times out
    # in the triggerer instead.
    monkeypatch.setenv("AIRFLOW_VAR_PETAL_SAGEMAKER_DEFERRABLE", "false")
    _jobs_never_finish("transform", moto_sagemaker, proxy, monkeypatch)
    dag = load_dag("petal_label_papers")
    dag.get_task("sagemaker.transform").max_ingestion_time = 3

    run = dag.test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    states = _states(run)
    assert run.state == "failed", states
    assert states["sagemaker.transform"] == "failed"
    assert states["sagemaker.delete_model"] == "success"
    _no_resources_left(moto_sagemaker)
    _no_labels(labelling_database)
    subject, body = _alert(smtp_server)
    assert "sagemaker.transform" in subject and "took more than 3 seconds" in body
    # The job itself is stopped, or it would keep running (and billing) in SageMaker.
    assert "sagemaker:StopTransformJob" in proxy.operations()


def test_training_job_that_never_finishes_is_stopped_and_alerts(
    airflow_db, curated_database, petal_home, moto_sagemaker, proxy, smtp_server, monkeypatch
):
    # The worker-side wait's own timeout (max_ingestion_time); a deferred wait times out
    # in the triggerer instead.
    monkeypatch.setenv("AIRFLOW_VAR_PETAL_SAGEMAKER_DEFERRABLE", "false")
    _jobs_never_finish("training", moto_sagemaker, proxy, monkeypatch)
    dag = load_dag("petal_train_model")
    dag.get_task("sagemaker.train").max_ingestion_time = 3

    run = dag.test(
        logical_date=RUN_DATE,
        run_conf={"backend": "sagemaker", "model_version": "stuck", "dry_run": False},
    )

    states = _states(run)
    assert run.state == "failed", states
    assert states["sagemaker.train"] == "failed"
    assert states["promote"] != "success" and states["cleanup"] == "success"
    assert "sagemaker:StopTrainingJob" in proxy.operations()
    staged = _client("s3", moto_sagemaker).list_objects_v2(Bucket=BUCKET, Prefix="petal/training/")
    assert staged.get("KeyCount", 0) == 0, "training data staged in S3 must be deleted"
    assert query(curated_database, "SELECT count(*) FROM model_versions") == [(0,)]
    subject, body = _alert(smtp_server)
    assert "sagemaker.train" in subject and "took more than 3 seconds" in body


def test_a_run_whose_upload_failed_cleans_up_without_aws_and_alerts_once(
    airflow_db, labelling_database, petal_home, moto_sagemaker, proxy, smtp_server
):
    """Issue 11 item 7: nothing was created in S3 or SageMaker, so the cleanup makes no
    AWS call at all (it would fail too, and alert twice) and succeeds."""
    proxy.rules = [Rule(_first("s3:PUT"), "InternalError", times=None)]
    dag = load_dag("petal_label_papers")
    dag.get_task("sagemaker.upload_input").retries = 0

    run = dag.test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    states = _states(run)
    assert run.state == "failed", states
    assert states["sagemaker.upload_input"] == "failed"
    assert states["sagemaker.create_model"] == "upstream_failed"
    assert states["cleanup"] == "success"
    # Only the model upload's own calls (its tries, then boto3 aborting the multipart
    # upload): no listing or deletion of the run's staging, no SageMaker call.
    operations = proxy.operations()
    assert operations and all(op.endswith("/petal/models/tiny/model.tar.gz") for op in operations)
    assert query(labelling_database, "SELECT status FROM labelling_runs") == [("failed",)]
    subject, body = _alert(smtp_server)
    assert "sagemaker.upload_input" in subject and "InternalError" in body


def test_a_training_run_whose_upload_failed_cleans_up_only_its_staging_and_alerts_once(
    airflow_db, curated_database, petal_home, moto_sagemaker, proxy, smtp_server
):
    """Training's cleanup follows labelling's design (`run_cleanup`): the upload said it
    was about to write under its prefix, so that prefix is deleted; no SageMaker job or
    model can exist before `train` ran, so SageMaker is never called."""
    proxy.rules = [Rule(_first("s3:PUT"), "InternalError", times=None)]
    dag = load_dag("petal_train_model")
    dag.get_task("sagemaker.upload_training_data").retries = 0

    run = dag.test(
        logical_date=RUN_DATE,
        run_conf={"backend": "sagemaker", "model_version": "unsent", "dry_run": False},
    )

    states = _states(run)
    assert run.state == "failed", states
    assert states["sagemaker.upload_training_data"] == "failed"
    assert states["sagemaker.train"] == "upstream_failed"
    assert states["cleanup"] == "success"
    operations = proxy.operations()
    assert not [op for op in operations if op.startswith("sagemaker:")], operations
    assert f"s3:GET /{BUCKET}" in operations, "the cleanup lists the staging to delete it"
    staged = _client("s3", moto_sagemaker).list_objects_v2(Bucket=BUCKET, Prefix="petal/training/")
    assert staged.get("KeyCount", 0) == 0
    assert query(curated_database, "SELECT count(*) FROM model_versions") == [(0,)]
    subject, body = _alert(smtp_server)
    assert "sagemaker.upload_training_data" in subject and "InternalError" in body


def test_an_s3_workspace_that_throttles_and_fails_once_is_retried_and_labels_once(
    airflow_db, labelling_database, petal_home, moto_sagemaker, proxy, monkeypatch
):
    """Issue 25: the object-storage workspace (PETAL_WORKSPACE_URL) under the same faults:
    its client retries (the connection's `retries`), nothing half-written is read, and
    the labels are written once."""
    monkeypatch.setenv("PETAL_WORKSPACE_URL", f"s3://{BUCKET}/workspace/")
    runs = f"/{BUCKET}/workspace/runs/"
    proxy.rules = [
        Rule(_first(f"s3:PUT {runs}"), "SlowDown", times=2),  # staging the papers
        Rule(lambda op: op.startswith(f"s3:GET {runs}") and "predictions" in op, "InternalError"),
    ]

    run = load_dag("petal_label_papers").test(logical_date=RUN_DATE, run_conf=SAGEMAKER)

    assert run.state == "success", _states(run)
    injected = [call.operation for call in proxy.injected()]
    assert len(injected) == 3, injected
    assert query(labelling_database, "SELECT status, papers_labelled FROM labelling_runs") == [
        ("success", 11)
    ]
    assert query(labelling_database, "SELECT count(*) FROM paper_labelling") == [(11,)]
    listed = _client("s3", moto_sagemaker).list_objects_v2(Bucket=BUCKET, Prefix="workspace/runs/")
    assert listed.get("KeyCount", 0) == 0
    _no_resources_left(moto_sagemaker)
