"""The typed run state the Airflow tasks pass through XCom, the window a run labels,
the sagemaker configuration check, and the error text a run row keeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from petal_labeller.pipeline.run import RunSummary, StagedRun
from petal_labeller.store.runs import MAX_ERROR_CHARS, redact_error


def test_staged_run_round_trips_through_json_xcom():
    staged = StagedRun(
        run_id="petal_label_papers/scheduled__2026-11-03T00:00:00+00:00",
        run_key="petal-label-papers/abc",
        model_version="v1",
        artefact_uri="/models/v1/model.tar.gz",
        count=12,
        backend="sagemaker",
        since=datetime(2026, 11, 2, tzinfo=UTC),
        until=datetime(2026, 11, 3, tzinfo=UTC),
        airflow_run_id="scheduled__2026-11-03T00:00:00+00:00",
        dry_run=True,
    )
    payload = json.loads(json.dumps(staged.to_xcom()))
    assert StagedRun.from_xcom(payload) == staged
    everything = StagedRun("r", "k", "v1", "/m", 0)
    assert StagedRun.from_xcom(json.loads(json.dumps(everything.to_xcom()))) == everything
    assert everything.to_xcom()["since"] is None


def test_retrain_run_and_evaluation_round_trip_through_json_xcom():
    from pathlib import Path

    from petal_labeller.pipeline.retrain import Evaluation, ProductionModel, RetrainRun

    run = RetrainRun(
        run_key="petal-train-model/abc",
        version="v20261103-abcdef",
        backend="sagemaker",
        workdir=Path("/w"),
        train_dir=Path("/w/train"),
        heldout=Path("/w/heldout.jsonl"),
        train_papers=50,
        heldout_papers=9,
        reviewed_papers=2,
        production=ProductionModel("v1", "s3://bucket/petal/models/v1/model.tar.gz"),
    )
    payload = json.loads(json.dumps(run.to_xcom()))
    assert RetrainRun.from_xcom({**payload, "added_later": 1}) == run
    assert payload["production"] == {"version": "v1", "artefact_uri": run.production.artefact_uri}
    trained = RetrainRun.from_xcom(
        {**payload, "production": None, "artefact": "/w/c/model.tar.gz", "outputs": {"x": None}}
    )
    assert trained.artefact == Path("/w/c/model.tar.gz") and trained.production is None
    assert RetrainRun.from_xcom(json.loads(json.dumps(trained.to_xcom()))) == trained
    evaluation = Evaluation(
        "v2", "/w/c/model.tar.gz", {"micro_F1": 0.5}, None, None,
        {"candidate": "/w/c.out", "production": None}, "/w/heldout.jsonl", "local", 50, 9, 2,
    )  # fmt: skip
    assert Evaluation.from_xcom(json.loads(json.dumps(evaluation.to_xcom()))) == evaluation
    assert evaluation.first


def test_run_summary_round_trips_and_ignores_unknown_keys():
    summary = RunSummary("r", "v1", 12, 11, 1, 40, quarantine="q.jsonl")
    assert RunSummary.from_xcom({**summary.to_xcom(), "added_later": 1}) == summary


def test_a_run_without_logical_date_labels_everything():
    from petal_labeller.airflow.labelling.flow import EVERYTHING, INTERVAL, data_window

    day = (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    context = {"data_interval_start": day[0], "data_interval_end": day[1]}
    assert data_window(INTERVAL, context) == (None, None)  # no logical date: no window
    assert data_window(INTERVAL, {}) == (None, None)  # no logical date: no keys at all
    assert data_window(EVERYTHING, {**context, "logical_date": day[0]}) == (None, None)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("could not connect to postgresql://petal:hunter2@db:5432/petal", "hunter2"),
        ("smtp login failed: password=hunter2 user=x", "hunter2"),
        ("AWS said no to AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ('{"api_key": "k-123456"}', "k-123456"),
    ],
)
def test_error_text_is_stored_without_secrets(text, secret):
    redacted = redact_error(text)
    assert secret not in redacted and "***" in redacted


def test_error_text_is_bounded():
    assert len(redact_error("x" * 10_000)) == MAX_ERROR_CHARS


def test_sagemaker_check_names_everything_missing(monkeypatch, tmp_path):
    from petal_labeller.airflow import variables
    from petal_labeller.airflow.aws.config_check import sagemaker_problems

    _no_aws_anywhere(monkeypatch, tmp_path)
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    monkeypatch.setenv("AIRFLOW_VAR_PETAL_SAGEMAKER_ROLE", "not-a-role")

    problems = sagemaker_problems(variables.LABELLING_SAGEMAKER)

    text = "; ".join(problems)
    assert "'petal_s3_bucket' is not set" in text
    assert "'petal_sagemaker_image' is not set" in text
    assert "'not-a-role' is not an IAM role ARN" in text
    assert "no AWS region" in text
    assert "no AWS credentials" in text

    monkeypatch.setenv("AIRFLOW_VAR_PETAL_S3_BUCKET", "bucket")
    monkeypatch.setenv(
        "AIRFLOW_VAR_PETAL_SAGEMAKER_IMAGE", "123456789012.dkr.ecr.us-east-1.amazonaws.com/p:1"
    )
    monkeypatch.setenv("AIRFLOW_VAR_PETAL_SAGEMAKER_ROLE", "arn:aws:iam::123456789012:role/p")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert sagemaker_problems(variables.LABELLING_SAGEMAKER) == ["no AWS credentials: "
        "connection 'aws_default' has no keys and none were found in the workers' "
        "environment, shared credential files or instance metadata"]  # fmt: skip
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA" + "TESTKEY0000000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    assert sagemaker_problems(variables.LABELLING_SAGEMAKER) == []


def _no_aws_anywhere(monkeypatch, tmp_path) -> None:
    """No region, no credentials: no environment, no files, no instance metadata."""
    for name in (
        "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(
    ("extra", "login", "missing"),
    [
        ({"region_name": "eu-west-1"}, ("AKIA" + "CONNKEY000000000", "secret"), False),
        ({"region_name": "eu-west-1", "role_arn": "arn:aws:iam::123456789012:role/a"}, None,
         True),
        ({"region_name": "eu-west-1", "profile_name": "no-such-profile"}, None, True),
    ],
)  # fmt: skip
def test_credentials_are_looked_for_where_the_hook_looks(
    monkeypatch, tmp_path, extra, login, missing
):
    """Keys in the connection count; a role to assume needs base credentials to assume it
    with; an unknown profile is no credentials (not a crash)."""
    from petal_labeller.airflow.aws.config_check import sagemaker_problems

    _no_aws_anywhere(monkeypatch, tmp_path)
    connection = {"conn_type": "aws", "extra": extra}
    if login:
        connection.update(login=login[0], password=login[1])
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))

    problems = sagemaker_problems([])

    assert [p for p in problems if "region" in p] == []
    assert any(p.startswith("no AWS credentials") for p in problems) is missing
    assert not any("secret" in p or "CONNKEY" in p for p in problems)
