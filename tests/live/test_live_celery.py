"""The labelling scenario on CeleryExecutor: two `airflow celery worker` processes, Redis
as the broker, PostgreSQL (Airflow's metadata database) as the result backend.

Reuses the session's api-server, dag-processor and databases; only the scheduler is
swapped for one configured with CeleryExecutor (and swapped back afterwards). Each
worker has its own working directory, AIRFLOW_HOME (task logs), HOME, TMPDIR and
PETAL_HOME: no disk is shared, as on MWAA. The run's files go through the object-storage
workspace (PETAL_WORKSPACE_URL, an s3:// prefix on a moto server reached through the
workers' `aws_default` connection). The same window is labelled with the same artefact
under three version names, once on the LocalExecutor and twice on the Celery workers
(the local backend, then the sagemaker one on moto's transform fake), and the label rows
compared.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from petal_labeller.config import SHARED_DATA_DIR
from tests.fixtures.airflow import (
    AWS_REGION,
    BUCKET,
    REPO_ROOT,
    free_port,
    write_unlabelled_papers,
)
from tests.live.conftest import BIN, Airflow, _start, _stop_all

pytestmark = pytest.mark.slow

LABEL = "petal_label_papers"
WORKERS = ("petal-worker-a", "petal-worker-b")
#: A day no other live test touches: manual runs dated the next day label it.
DAY = "2021-03-01"
PAPERS = 6
WORKSPACE = f"s3://{BUCKET}/celery-workspace/"


def _celery_env(live: Airflow) -> dict[str, str]:
    meta = live.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return {
        **live.env,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        # A Redis database of its own on the machine's server: other users keep theirs.
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{random.randint(1, 15)}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
    }


def _start_worker(live: Airflow, env: dict[str, str], name: str, s3: str) -> subprocess.Popen:
    """A worker in a folder of its own, PETAL_HOME included: only the object store
    (the moto server at `s3`) is common."""
    own = live.home / name
    for sub in ("cwd", "airflow", "home", "tmp", "petal-home"):
        (own / sub).mkdir(parents=True, exist_ok=True)
    connection = {
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": s3, "region_name": AWS_REGION},
    }  # fmt: skip
    worker_env = {
        **env,
        "AIRFLOW_HOME": str(own / "airflow"),
        "HOME": str(own / "home"),
        "TMPDIR": str(own / "tmp"),
        "PETAL_HOME": str(own / "petal-home"),
        "PETAL_WORKSPACE_URL": WORKSPACE,
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        # Two workers on one host: each serves its own task logs and reports its own
        # name as the task instances' hostname (Airflow's hostname_callable).
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.live.worker_name.hostname",
        "PETAL_WORKER_NAME": name,
        "PYTHONPATH": str(REPO_ROOT),
    }
    log = live.home / f"{name}.log"
    live.logs[name] = log
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BIN / "airflow"), "celery", "worker", "--celery-hostname", name,
             "--concurrency", "1"],
            env=worker_env, stdout=out, stderr=subprocess.STDOUT, cwd=own / "cwd",
            start_new_session=True,
        )  # fmt: skip


def _wait_for_workers(live: Airflow, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live.check_alive()
        if all("ready." in live.logs[w].read_text(errors="replace") for w in WORKERS):
            return
        time.sleep(2)
    raise AssertionError(f"celery workers not ready after {timeout} s")


def _swap_scheduler(live: Airflow, env: dict[str, str], log_name: str) -> None:
    """Stop the running scheduler and start one with `env` (its executor) in its place."""
    _stop_all([live.processes.pop("scheduler")])
    live.logs[log_name] = live.home / f"{log_name}.log"
    port = int(live.url.rsplit(":", 1)[1])
    live.processes["scheduler"] = _start("scheduler", env, live.logs[log_name], port)


@pytest.fixture
def celery(airflow_services: Airflow, moto_sagemaker) -> Iterator[Airflow]:
    """The session's services with a CeleryExecutor scheduler and two workers, for one test."""
    live = airflow_services
    env = _celery_env(live)
    _swap_scheduler(live, env, "scheduler-celery")
    try:
        for name in WORKERS:
            live.processes[name] = _start_worker(live, env, name, moto_sagemaker.endpoint_url)
        _wait_for_workers(live)
        yield live
    finally:
        _stop_all([live.processes.pop(name) for name in WORKERS if name in live.processes])
        _swap_scheduler(live, live.env, "scheduler-local")


def _versions(live: Airflow, artefact: str) -> None:
    for version in ("v-local-exec", "v-celery-exec", "v-celery-sagemaker"):
        live.petal("model", "register", artefact, "--version", version)


def _label(live: Airflow, version: str, hour: int, backend: str = "local") -> dict:
    """A manual run (REST API) labelling DAY with model `version`; waits until it ends."""
    run = live.ok(
        "POST",
        f"/api/v2/dags/{LABEL}/dagRuns",
        json={"logical_date": f"{DAY}T{hour:02d}:00:00+00:00",
              "conf": {"model_version": version, "backend": backend}},
    )  # fmt: skip
    [done] = live.wait_for_runs(LABEL, 1, lambda r: r["dag_run_id"] == run["dag_run_id"], 400)
    assert done["state"] == "success", live.task_instances(LABEL, run["dag_run_id"])
    return done


def _labels(live: Airflow, version: str) -> list[tuple]:
    """The labels `version` gives its papers: its own rows, or another version's it kept
    because they were unchanged (issue 26 item 3: the second of two versions of one
    artefact writes no label row)."""
    return live.query(
        "SELECT l.paper_id, pl.label_id, round(pl.score::numeric, 6) FROM paper_labelling l "
        "JOIN paper_labels pl ON pl.paper_id = l.paper_id AND pl.origin = 'model' "
        " AND pl.model_version = coalesce(l.labels_version, l.model_version) "
        "WHERE l.model_version = %s ORDER BY l.paper_id, pl.label_id",
        (version,),
    )


@pytest.fixture
def store_with_day(airflow_services: Airflow, tmp_path: Path, request) -> Airflow:
    """Taxonomy, two unpromoted versions of one artefact, and PAPERS papers ingested on DAY."""
    live = airflow_services
    live.petal("taxonomy", "load", str(SHARED_DATA_DIR / "taxonomy.json"))
    production = live.query("SELECT artefact_uri FROM model_versions WHERE is_production")
    artefact = production[0][0] if production else str(request.getfixturevalue("tiny_model_tar"))
    _versions(live, artefact)
    # Papers of their own: the docs test imports the shared ones, which keep their day.
    papers = write_unlabelled_papers(tmp_path / "celery.jsonl", start=500, count=PAPERS)
    records = [json.loads(line) for line in papers.read_text(encoding="utf-8").splitlines()]
    for record in records:
        record["doi"] = f"{record.get('doi') or '10.5555/petal'}.celery"
        record["title"] = f"{record['title']} (Celery test copy)"
    papers.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    live.petal("papers", "import", str(papers), "--ingested-at", f"{DAY}T12:00:00+00:00")
    live.set_paused(LABEL, False)
    return live


@pytest.mark.timeout(1200)
def test_celery_workers_share_a_run_and_label_as_the_local_executor_does(store_with_day, request):
    live = store_with_day
    _label(live, "v-local-exec", hour=0)  # the session's LocalExecutor scheduler

    live = request.getfixturevalue("celery")
    run = _label(live, "v-celery-exec", hour=6)

    tis = live.task_instances(LABEL, run["dag_run_id"])
    ran = {ti["task_id"]: ti["hostname"] for ti in tis.values() if ti["state"] == "success"}
    assert {"stage", "infer_local", "write_labels", "cleanup"} <= set(ran)
    assert set(ran.values()) == set(WORKERS), ran  # one run, both workers
    local, celery = _labels(live, "v-local-exec"), _labels(live, "v-celery-exec")
    assert local and celery == local
    rows = live.query(
        "SELECT model_version, status, papers_selected, papers_labelled FROM labelling_runs "
        "WHERE model_version IN ('v-local-exec', 'v-celery-exec') ORDER BY model_version"
    )
    assert rows == [
        ("v-celery-exec", "success", PAPERS, PAPERS),
        ("v-local-exec", "success", PAPERS, PAPERS),
    ]
    _assert_workspace_left_clean(live, request)

    # The same window on the sagemaker backend, still on the two workers: the papers and
    # the output go through the S3 workspace and the transform's prefix on the moto server
    # (copied inside S3), never a shared disk; the transform fake runs the same handlers
    # on the same artefact. The workers poll the job: this scenario starts no triggerer.
    request.getfixturevalue("sagemaker_variables")
    run = _label(live, "v-celery-sagemaker", hour=12, backend="sagemaker")
    tis = live.task_instances(LABEL, run["dag_run_id"])
    ran = {ti["task_id"]: ti["hostname"] for ti in tis.values() if ti["state"] == "success"}
    assert {"stage", "sagemaker.transform", "write_labels", "cleanup"} <= set(ran), tis
    assert tis["infer_local"]["state"] == "skipped"
    assert set(ran.values()) <= set(WORKERS), ran
    assert _labels(live, "v-celery-sagemaker") == local
    assert live.query(
        "SELECT status, papers_selected, papers_labelled FROM labelling_runs "
        "WHERE airflow_run_id = %s",
        (run["dag_run_id"],),
    ) == [("success", PAPERS, PAPERS)]
    moto = request.getfixturevalue("moto_sagemaker")
    assert len(moto.jobs) == 1 and moto.pollers
    assert not any("aiobotocore" in agent for agent in moto.pollers), "polled on the workers"
    sagemaker = boto3.client(
        "sagemaker", endpoint_url=moto.endpoint_url, region_name=AWS_REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    assert sagemaker.list_models()["Models"] == []
    staged = moto.s3().list_objects_v2(Bucket=BUCKET, Prefix="petal/runs/")
    assert staged.get("KeyCount", 0) == 0, staged.get("Contents")
    _assert_workspace_left_clean(live, request)


@pytest.fixture
def sagemaker_variables(airflow_services: Airflow) -> Iterator[None]:
    """The sagemaker backend's Variables for the moto account, worker-side polling; put
    back afterwards."""
    live = airflow_services
    before = live.settings()
    for key, value in {
        "petal_s3_bucket": BUCKET,
        "petal_sagemaker_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/petal:1",
        "petal_sagemaker_role": "arn:aws:iam::123456789012:role/petal-sagemaker",
        "petal_sagemaker_deferrable": "false",
    }.items():
        live.ok("POST", "/api/v2/variables", json={"key": key, "value": value})
    try:
        yield
    finally:
        live.restore_settings(before)


def _assert_workspace_left_clean(live: Airflow, request) -> None:
    # Each worker's files went through the store and left no copy on either worker;
    # the cleanup removed the run's prefix.
    for name in WORKERS:
        assert not list((live.home / name).rglob("*.jsonl")), name
    moto = request.getfixturevalue("moto_sagemaker")
    listed = moto.s3().list_objects_v2(Bucket=BUCKET, Prefix="celery-workspace/")
    assert listed.get("KeyCount", 0) == 0, listed.get("Contents")
    published = [key for key in moto.s3_puts if key.startswith("celery-workspace/runs/")]
    assert {key.split("/")[-1].split(".tmp-")[0] for key in published} == {
        "papers.jsonl", "predictions.jsonl"
    }, moto.s3_puts  # fmt: skip
