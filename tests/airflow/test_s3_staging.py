"""S3 staging through the provider's S3Hook on a moto server: what a download may read.

A transform's output is bounded by the papers staged for it; a larger object (a broken
or hostile container) is refused before a byte is read or copied, on both ways the
labelling flow keeps it (downloaded to a local workspace, copied to an s3:// one).
"""

from __future__ import annotations

import pytest

from tests.fixtures.airflow import BUCKET

pytestmark = pytest.mark.slow  # a moto server per test

KEY = "petal/runs/dag/run/output/papers.jsonl.out"


@pytest.fixture
def s3(moto_sagemaker, tmp_path, monkeypatch):
    """The real S3Hook on the moto server, and a local PETAL_HOME for the workspace."""
    from petal_labeller.airflow.aws import s3_staging
    from petal_labeller.pipeline import workspace

    monkeypatch.setenv("PETAL_HOME", str(tmp_path / "home"))
    workspace.forget_filesystems()
    yield s3_staging.s3_hook()
    workspace.forget_filesystems()


def _put(moto_sagemaker, body: bytes) -> None:
    moto_sagemaker.s3().put_object(Bucket=BUCKET, Key=KEY, Body=body)


def test_a_bounded_download_refuses_a_larger_object_before_reading_it(s3, moto_sagemaker, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from petal_labeller.airflow.aws import s3_staging

    _put(moto_sagemaker, b"hello world")
    with pytest.raises(AirflowFailException, match="11 bytes, more than the 10"):
        s3_staging.download(s3, BUCKET, KEY, tmp_path / "a", max_bytes=10)
    assert not (tmp_path / "a").exists()
    path = s3_staging.download(s3, BUCKET, KEY, tmp_path / "b", max_bytes=11)
    assert path.read_bytes() == b"hello world"


@pytest.mark.parametrize("store", ["local", "s3"])
def test_an_output_larger_than_its_papers_allow_is_neither_downloaded_nor_copied(
    store, s3, moto_sagemaker, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    from petal_labeller.airflow.aws import s3_staging
    from petal_labeller.pipeline.validate import MAX_OUTPUT_LINE_BYTES, max_output_bytes
    from petal_labeller.pipeline.workspace import workspace_for

    if store == "s3":
        monkeypatch.setenv("PETAL_WORKSPACE_URL", f"s3://{BUCKET}/workspace/")
    workspace = workspace_for("dag/run")
    _put(moto_sagemaker, b"x" * (2 * (MAX_OUTPUT_LINE_BYTES + 1) + 1))

    with pytest.raises(AirflowFailException, match=r"more than the \d+ its papers allow"):
        s3_staging.keep_output(s3, BUCKET, KEY, workspace, max_bytes=max_output_bytes(2))
    assert not workspace.output_path.exists()
    kept = moto_sagemaker.s3().list_objects_v2(Bucket=BUCKET, Prefix="workspace/")
    assert kept.get("KeyCount", 0) == 0

    _put(moto_sagemaker, b'{"paper_id": 1, "scores": {"a": 0.5}}\n')
    where = s3_staging.keep_output(s3, BUCKET, KEY, workspace, max_bytes=max_output_bytes(1))
    if store == "s3":
        assert where == f"s3://{BUCKET}/workspace/runs/dag/run/predictions.jsonl"
    else:
        assert workspace.output_path.read_bytes().startswith(b'{"paper_id": 1')
