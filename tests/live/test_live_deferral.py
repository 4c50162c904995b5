"""Issue 25: a sagemaker labelling run's transform wait is deferred to a live triggerer.

The SageMaker side is a moto server in this test process (with the fake container that
runs our inference handlers); the live services reach it over HTTP through the
`aws_default` connection this test sets with the REST API, as an operator would. A
triggerer runs only for this module, so the approval tests still show that HITL tasks
need none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tests.fixtures.airflow import AWS_REGION, BUCKET, write_unlabelled_papers
from tests.live.conftest import Airflow, _start, _stop_all
from tests.live.test_live_views import labelled as labelled

# `labelled` above is a fixture (a production model in the live store), imported so
# pytest finds it here.
#: The runs ahead, reaching the transform and the run's end, each bounded below.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

LABEL, RELABEL = "petal_label_papers", "petal_relabel_papers"
TRANSFORM = "sagemaker.transform"
#: The fake transform stays InProgress this long: time to see the task deferred.
TRANSFORM_S = 30.0
#: A day no other live test ingests papers on: the run labels exactly this test's papers
#: (papers of their own, `tag`: the docs test imports the whole shared file first).
DAY = datetime(2021, 3, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def triggerer(labelled: Airflow) -> Iterator[Airflow]:
    """`airflow triggerer` beside the session's services, for this module only."""
    live = labelled
    log = live.home / "triggerer.log"
    live.logs["triggerer"] = log
    process = _start("triggerer", live.env, log, port=0)
    try:
        yield live
    finally:
        _stop_all([process])
        live.logs.pop("triggerer", None)


@pytest.fixture
def on_moto(triggerer: Airflow, moto_sagemaker) -> Iterator[Airflow]:
    """`aws_default` and the sagemaker Variables pointing at the moto server; put back after."""
    live = triggerer
    before = live.settings()
    extra = {"endpoint_url": moto_sagemaker.endpoint_url, "region_name": AWS_REGION}
    live.ok("POST", "/api/v2/connections", json={
        "connection_id": "aws_default", "conn_type": "aws", "login": "testing",
        "password": "testing", "extra": json.dumps(extra),
    })  # fmt: skip
    for key, value in {
        "petal_s3_bucket": BUCKET,
        "petal_sagemaker_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/petal:1",
        "petal_sagemaker_role": "arn:aws:iam::123456789012:role/petal-sagemaker",
    }.items():
        live.ok("POST", "/api/v2/variables", json={"key": key, "value": value})
    try:
        yield live
    finally:
        live.restore_settings(before)


def _state_of(live: Airflow, run_id: str, task_id: str) -> str | None:
    return live.task_instances(LABEL, run_id).get(task_id, {}).get("state")


def _import_and_trigger(live: Airflow, papers, day: datetime) -> str:
    """`papers` ingested on `day`, then a sagemaker run of `day`, with no run ahead of it.

    The labelling DAG runs one run at a time: unpausing it catches up the schedule's
    days, and an earlier test's runs may still be going; a run queued behind them is not
    what the transform's deadline below measures. And a relabelling run (an earlier
    test's promotion) labels every paper the production model has not: one still going
    when the papers arrive would label them first, leaving this run nothing to label.
    """
    live.set_paused(LABEL, False)
    live.wait_until_idle(LABEL)
    live.wait_until_idle(RELABEL)
    live.petal("papers", "import", str(papers), "--ingested-at", f"{day:%Y-%m-%d}T06:00:00Z")
    run = live.ok("POST", f"/api/v2/dags/{LABEL}/dagRuns", json={
        "logical_date": day.isoformat(), "conf": {"backend": "sagemaker"},
    })  # fmt: skip
    return run["dag_run_id"]


def _wait_deferred(live: Airflow, run_id: str, timeout: float = 480) -> None:
    """Until the transform task is `deferred`; fails on any end state, naming every task's."""
    deadline = time.monotonic() + timeout
    while (state := _state_of(live, run_id, TRANSFORM)) != "deferred":
        states = {t: ti["state"] for t, ti in live.task_instances(LABEL, run_id).items()}
        assert state not in ("success", "failed", "upstream_failed", "skipped"), states
        assert time.monotonic() < deadline, (states, live.runs(LABEL))
        live.check_alive()
        time.sleep(1)


def test_a_transform_waits_deferred_then_the_run_labels_and_leaves_nothing_in_aws(
    on_moto: Airflow, moto_sagemaker, tmp_path
):
    live = on_moto
    moto_sagemaker.min_runtime_s = TRANSFORM_S
    day = DAY
    papers = write_unlabelled_papers(tmp_path / "papers.jsonl", start=960, count=3, tag="deferral")
    run_id = _import_and_trigger(live, papers, day)
    _wait_deferred(live, run_id)
    # Deferred: no worker slot is held while SageMaker works. Airflow's own accounting
    # says so: the default pool counts the task as deferred, not running (its
    # include_deferred is off), so a second DAG's task could take that slot meanwhile.
    running = live.ok("GET", "/api/v2/dags/~/dagRuns/~/taskInstances", params={
        "state": "running", "pool": "default_pool",
    })["task_instances"]  # fmt: skip
    pool = live.ok("GET", "/api/v2/pools/default_pool")
    assert pool["deferred_slots"] >= 1, pool
    assert pool["running_slots"] == len(running), (pool, running)
    assert TRANSFORM not in {ti["task_id"] for ti in running if ti["dag_run_id"] == run_id}
    [done] = live.wait_for_runs(LABEL, 1, lambda r: r["dag_run_id"] == run_id, timeout=300)
    tis = live.task_instances(LABEL, run_id)
    assert done["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert tis[TRANSFORM]["state"] == "success" and tis["infer_local"]["state"] == "skipped"
    assert any("aiobotocore" in agent for agent in moto_sagemaker.pollers), "the triggerer polled"

    [(labelled_papers,)] = live.query(
        "SELECT papers_labelled FROM labelling_runs WHERE airflow_run_id = %s", (run_id,)
    )
    assert labelled_papers == 3
    sagemaker = boto3.client(
        "sagemaker", endpoint_url=moto_sagemaker.endpoint_url, region_name=AWS_REGION
    )
    assert sagemaker.list_models()["Models"] == []
    [job] = moto_sagemaker.jobs
    assert sagemaker.describe_transform_job(TransformJobName=job)["TransformJobStatus"] == (
        "Completed"
    )
    staged = moto_sagemaker.s3().list_objects_v2(Bucket=BUCKET, Prefix="petal/runs/")
    assert staged.get("KeyCount", 0) == 0


@pytest.fixture
def one_slot(on_moto: Airflow) -> Iterator[Airflow]:
    """The default pool, every task's, down to one slot; its size put back after."""
    live = on_moto
    before = live.ok("GET", "/api/v2/pools/default_pool")["slots"]
    live.ok("PATCH", "/api/v2/pools/default_pool", params={"update_mask": "slots"},
            json={"slots": 1})  # fmt: skip
    try:
        yield live
    finally:
        live.ok("PATCH", "/api/v2/pools/default_pool", params={"update_mask": "slots"},
                json={"slots": before})  # fmt: skip


def test_with_one_slot_another_dags_run_goes_while_a_transform_is_deferred(
    one_slot: Airflow, moto_sagemaker, tmp_path
):
    """What deferral buys a small MWAA environment: one worker slot, a SageMaker wait that
    lasts, and a second DAG's run (a relabelling dry run) still runs to its end meanwhile."""
    live = one_slot
    moto_sagemaker.min_runtime_s = 1200  # SageMaker "works" until the other run has ended
    papers = write_unlabelled_papers(tmp_path / "papers.jsonl", start=975, count=2, tag="deferral")
    day = DAY + timedelta(days=2)
    run_id = _import_and_trigger(live, papers, day)
    _wait_deferred(live, run_id)

    other = live.ok("POST", f"/api/v2/dags/{RELABEL}/dagRuns", json={
        "logical_date": None, "conf": {"dry_run": True},
    })["dag_run_id"]  # fmt: skip
    [ended] = live.wait_for_runs(RELABEL, 1, lambda r: r["dag_run_id"] == other, timeout=600)
    other_tis = live.task_instances(RELABEL, other)
    assert ended["state"] == "success", {t: ti["state"] for t, ti in other_tis.items()}
    assert other_tis["infer_local"]["state"] == "success"
    # All of it ran while the transform still waited, deferred, in the triggerer.
    assert _state_of(live, run_id, TRANSFORM) == "deferred"
    pool = live.ok("GET", "/api/v2/pools/default_pool")
    assert pool["slots"] == 1 and pool["deferred_slots"] >= 1, pool

    moto_sagemaker.min_runtime_s = 0  # the job completes; the transform resumes and ends
    [done] = live.wait_for_runs(LABEL, 1, lambda r: r["dag_run_id"] == run_id, timeout=480)
    tis = live.task_instances(LABEL, run_id)
    assert done["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert live.query(
        "SELECT papers_labelled FROM labelling_runs WHERE airflow_run_id = %s", (run_id,)
    ) == [(2,)]


def test_a_run_marked_failed_while_its_transform_is_deferred_stops_the_job_and_deletes_the_model(
    on_moto: Airflow, moto_sagemaker, tmp_path
):
    """`on_kill` does not run for a deferred task: the teardown's sweep by name must."""
    live = on_moto
    moto_sagemaker.min_runtime_s = 600  # still running when the run is marked failed
    papers = write_unlabelled_papers(tmp_path / "papers.jsonl", start=970, count=2, tag="deferral")
    day = DAY + timedelta(days=1)
    run_id = _import_and_trigger(live, papers, day)
    _wait_deferred(live, run_id)

    live.ok("PATCH", f"/api/v2/dags/{LABEL}/dagRuns/{run_id}", json={"state": "failed"})

    deadline = time.monotonic() + 480
    while _state_of(live, run_id, "cleanup") not in ("success", "failed"):
        assert time.monotonic() < deadline, live.task_instances(LABEL, run_id)
        time.sleep(2)
    assert _state_of(live, run_id, "cleanup") == "success"
    sagemaker = boto3.client(
        "sagemaker", endpoint_url=moto_sagemaker.endpoint_url, region_name=AWS_REGION
    )
    [job] = moto_sagemaker.jobs
    assert moto_sagemaker.stopped == [job]
    assert sagemaker.describe_transform_job(TransformJobName=job)["TransformJobStatus"] == "Stopped"
    assert sagemaker.list_models()["Models"] == []
    assert live.query(
        "SELECT count(*) FROM paper_labelling pl JOIN papers p ON p.id = pl.paper_id "
        "WHERE p.ingested_at >= %s AND p.ingested_at < %s",
        (day, day + timedelta(days=1)),
    ) == [(0,)]
