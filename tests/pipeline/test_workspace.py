"""The run workspace in an object store: what one worker publishes another fetches, whole
or not at all, and nothing is left behind (issue 25)."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest

from petal_labeller.config import SettingError
from petal_labeller.pipeline.workspace import WorkspaceError, workspace_for, workspace_url
from petal_labeller.store.connection import connect
from tests.fixtures.airflow import BUCKET


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file:// object store (a folder, as an NFS or any fsspec store would be)."""
    folder = tmp_path / "store"
    folder.mkdir()
    monkeypatch.setenv("PETAL_WORKSPACE_URL", f"file://{folder}/petal/")
    return folder


def _on_worker(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("PETAL_HOME", str(home))


def test_what_one_worker_publishes_another_with_its_own_disk_fetches(store, tmp_path, monkeypatch):
    _on_worker(monkeypatch, tmp_path / "worker-a")
    mine = workspace_for("petal_label_papers/run1").create()
    mine.input_path.write_text('{"paper_id": 1}\n', encoding="utf-8")
    mine.publish(mine.input_path)
    mine.drop_local()
    assert not mine.root.exists()
    assert (store / "petal/runs/petal_label_papers/run1/papers.jsonl").is_file()
    assert not list(store.rglob("*.tmp-*")), "published under a temporary name, then moved"

    _on_worker(monkeypatch, tmp_path / "worker-b")
    theirs = workspace_for("petal_label_papers/run1")
    assert theirs.root != mine.root
    assert theirs.fetch(theirs.input_path).read_text(encoding="utf-8") == '{"paper_id": 1}\n'
    assert not list(theirs.root.glob(".*tmp-*"))

    assert theirs.remove() is True
    assert not (store / "petal/runs/petal_label_papers/run1").exists()
    assert not theirs.root.exists()


def test_a_file_no_task_published_is_a_clear_error_naming_it(store, tmp_path, monkeypatch):
    _on_worker(monkeypatch, tmp_path / "worker")
    workspace = workspace_for("dag/run2")
    with pytest.raises(WorkspaceError, match=r"predictions\.jsonl of this run is not in the"):
        workspace.fetch(workspace.output_path)
    assert not workspace.output_path.exists()


def test_without_a_url_the_local_folder_is_the_workspace(tmp_path, monkeypatch):
    monkeypatch.delenv("PETAL_WORKSPACE_URL", raising=False)
    _on_worker(monkeypatch, tmp_path / "home")
    workspace = workspace_for("dag/run3").create()
    workspace.input_path.write_text("x\n")
    workspace.publish(workspace.input_path)
    workspace.drop_local()  # nothing elsewhere: the local copy is the only one
    assert workspace.remote is None and workspace.fetch(workspace.input_path).read_text() == "x\n"


def test_a_task_that_fails_leaves_no_local_copy_and_its_retry_fetches_afresh(
    store, tmp_path, monkeypatch
):
    """A failed task's copies go too: the retry (maybe elsewhere) reads the store's file."""
    from petal_labeller.pipeline.run import StagedRun, infer_run
    from petal_labeller.runtime.errors import ArtefactError

    _on_worker(monkeypatch, tmp_path / "worker")
    broken = tmp_path / "broken-model.tar.gz"
    broken.write_bytes(b"not a model artefact")
    staged = StagedRun(
        run_id="r1", run_key="dag/run4", model_version="v1", artefact_uri=str(broken), count=1
    )
    workspace = staged.workspace.create()
    workspace.input_path.write_text('{"paper_id": 1, "title": "t"}\n', encoding="utf-8")
    workspace.publish(workspace.input_path)
    workspace.drop_local()

    with pytest.raises(ArtefactError):
        infer_run(staged)
    assert not workspace.root.exists(), "the failed task's fetched copy is gone"
    assert (store / "petal/runs/dag/run4/papers.jsonl").is_file(), "the store keeps the input"


@pytest.mark.parametrize(
    "value",
    ["bucket/petal", "s3://", "s3:///", "s3://bucket/../etc", "s3://a b/", "s3://b/\nx",
     "ünï://bucket/", "s3://" + "b" * 2000, "http://bucket/", "file://relative/x", "file:///",
     "s3://Bucket_Upper/", "s3://bucket/x?y=1", "gs://bucket/"],
)  # fmt: skip
def test_an_unusable_workspace_url_is_refused_before_anything_is_written(value, monkeypatch):
    monkeypatch.setenv("PETAL_WORKSPACE_URL", value)
    with pytest.raises(SettingError, match="PETAL_WORKSPACE_URL") as caught:
        workspace_url()
    assert len(str(caught.value)) < 300, "a long value is not echoed whole"
    with pytest.raises(SettingError, match="PETAL_WORKSPACE_URL"):
        workspace_for("dag/run")  # every path that would use it


def test_a_workspace_url_is_an_s3_bucket_prefix_or_an_absolute_folder(monkeypatch):
    for value, read in [
        ("s3://my-petal-bucket/petal/workspace/", "s3://my-petal-bucket/petal/workspace"),
        ("s3://my-petal-bucket", "s3://my-petal-bucket"),
        ("file:///mnt/petal/", "file:///mnt/petal"),
    ]:
        monkeypatch.setenv("PETAL_WORKSPACE_URL", value)
        assert workspace_url() == read


@pytest.mark.slow
def test_a_model_registered_into_an_s3_workspace_labels_on_a_worker_that_never_saw_it(
    labelling_database, petal_home, moto_sagemaker, tiny_model_tar, tmp_path, monkeypatch
):
    """Outside Airflow the workspace's S3 access is the AWS SDK's own (env, profile, role)."""
    from click.testing import CliRunner

    from petal_labeller.cli import main
    from petal_labeller.pipeline.workspace import forget_filesystems

    # This test process may have run Airflow tasks (dag.test) that registered their
    # connection's filesystem for another moto server; a `petal` process never has.
    forget_filesystems()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_sagemaker.endpoint_url)
    monkeypatch.setenv("PETAL_WORKSPACE_URL", f"s3://{BUCKET}/workspace/")
    petal = ["--database-url", labelling_database]
    registered = CliRunner().invoke(
        main, [*petal, "model", "register", str(tiny_model_tar), "--version", "tiny-ws",
               "--promote"],
    )  # fmt: skip
    assert registered.exit_code == 0, registered.output
    with closing(connect(labelling_database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT artefact_uri FROM model_versions WHERE version = 'tiny-ws'")
        [(uri,)] = cur.fetchall()
    assert uri == f"s3://{BUCKET}/workspace/models/tiny-ws/model.tar.gz"

    other_worker = tmp_path / "other-worker"
    monkeypatch.setenv("PETAL_HOME", str(other_worker))
    result = CliRunner().invoke(main, [*petal, "label", "--json"])

    assert result.exit_code == 1, result.output  # 1: the paper with no text is rejected
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["papers_selected"], summary["papers_labelled"]) == (12, 11)
    [fetched] = (other_worker / "models" / "fetched").rglob("model.tar.gz")
    assert fetched.read_bytes() == tiny_model_tar.read_bytes()
    # The rejected paper's report is kept in the store; the run's files are gone.
    assert summary["quarantine"].startswith(f"s3://{BUCKET}/workspace/quarantine/cli/")
    keys = [o["Key"] for o in moto_sagemaker.s3().list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert [k for k in keys if k.startswith("workspace/runs/")] == []
    assert len([k for k in keys if k.startswith("workspace/quarantine/")]) == 1
    assert not any((other_worker / "runs").rglob("*.jsonl"))
    with closing(connect(labelling_database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM paper_labelling WHERE model_version = 'tiny-ws'")
        assert cur.fetchone() == (11,)
