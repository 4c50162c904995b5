"""`petal_review_papers`: its shape, and runs on the files and Ground Truth backends.

Ground Truth runs against the moto server with labelling jobs added at its HTTP
boundary (`tests.fixtures.ground_truth`: moto has none); boto3 goes through the
provider's SageMakerHook as in production.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from tests.fixtures.airflow import BUCKET, load_dag
from tests.review.conftest import store  # noqa: F401 (the review store fixture)

DAG_ID = "petal_review_papers"
WHEN = datetime(2026, 12, 2, tzinfo=UTC)


def _query(conn, sql: str, args=()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def test_the_dag_follows_the_house_conventions(dag_bag):
    from airflow.timetables.trigger import CronTriggerTimetable

    from petal_labeller.airflow.assets import CURATED_PAPERS

    dag = dag_bag.get_dag(DAG_ID)
    assert "petal" in dag.tags and "review" in dag.tags and len(dag.doc_md) > 200
    assert isinstance(dag.timetable, CronTriggerTimetable) and dag.catchup is False
    assert dag.timetable.summary == "0 0 * * 0"  # weekly; and by hand
    assert [t.task_id for t in dag.roots] == ["check_config"]
    assert dag.on_failure_callback and dag.on_success_callback  # one alert per failed run
    for task in dag.tasks:
        assert task.owner == "petal" and task.on_failure_callback, task.task_id
        assert task.retries == (0 if task.task_id == "check_config" else 2), task.task_id
    sensor = dag.get_task("wait_for_answers")
    assert sensor.mode == "reschedule"  # no worker slot held while curators work
    cleanup = dag.get_task("cleanup")
    assert cleanup.is_teardown and not cleanup.on_failure_fail_dagrun
    assert CURATED_PAPERS in dag.get_task("collect_and_apply").outlets
    assert set(dag.params) == {"papers", "backend", "selection", "timeout_hours", "model_version"}


@pytest.mark.parametrize(
    "conf",
    [{"backend": "mturk"}, {"papers": 0}, {"papers": 10_001}, {"selection": "random"},
     {"timeout_hours": -1}],
)  # fmt: skip
def test_bad_params_are_refused(dag_bag, conf):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag_bag.get_dag(DAG_ID).params)
    with pytest.raises(ParamValidationError):
        params.update(conf)
        params.validate()


@pytest.fixture(autouse=True)
def quick_looks(monkeypatch):
    """The sensor looks every second (read when the DAG is parsed), not every 10 minutes."""
    monkeypatch.setenv("PETAL_REVIEW_POLL_SECONDS", "1")


def _run(conf: dict):
    dag = load_dag(DAG_ID)
    # Each parse reads PETAL_REVIEW_POLL_SECONDS (quick_looks), whatever parsed before.
    assert dag.get_task("wait_for_answers").poke_interval == 1
    return dag.test(logical_date=WHEN, run_conf=conf)


def _ti(run, task_id: str):
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == task_id]
    return ti


@pytest.mark.slow
def test_files_backend_at_its_deadline_sends_the_papers_back_to_the_queue(
    airflow_db,
    store,  # noqa: F811 (the review store fixture)
    petal_home,
):
    conn = store["conn"]
    run = _run({"backend": "files", "papers": 2, "selection": "uncertain", "timeout_hours": 0})
    assert run.state == "success"
    (path,) = (petal_home / "review").glob("*.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["paper_id"] for x in lines] == [store["ids"]["torn"], store["ids"]["deep"]]
    # Nobody answered before the deadline: both tasks closed unanswered, papers queued again.
    assert sorted(_query(conn, "SELECT status FROM review_tasks")) == [("expired",), ("expired",)]


@pytest.mark.slow
def test_ground_truth_run_creates_a_job_and_collects_its_output_manifest(
    airflow_db,
    store,  # noqa: F811 (the review store fixture)
    petal_home,
    ground_truth_jobs,
):
    from tests.review.conftest import curator_labels

    conn, ids = store["conn"], store["ids"]
    answers = {
        ids["torn"]: {"verdict": "labels", "labels": ["protect", "cold"]},
        ids["deep"]: {"verdict": "irrelevant", "labels": []},
        # "sure" is not answered: its task is closed by the cleanup
    }
    ground_truth_jobs.workers = lambda line: answers.get(line["petal"]["paper_id"])
    run = _run({"backend": "ground_truth", "papers": 3, "selection": "uncertain"})
    assert run.state == "success", [(t.task_id, t.state) for t in run.get_task_instances()]
    (request,) = ground_truth_jobs.requests
    human = request["HumanTaskConfig"]
    assert human["PreHumanTaskLambdaArn"].endswith(":petal-review-pre")
    assert human["WorkteamArn"].endswith("workteam/private-crowd/petal-curators")
    assert request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"].startswith(
        f"s3://{BUCKET}/petal/review/petal-review-papers-"
    )
    assert curator_labels(conn, ids["torn"]) == [
        ("cold", "private.us-east-1.curator-1"), ("protect", "private.us-east-1.curator-1"),
    ]  # fmt: skip
    assert _query(conn, "SELECT id FROM papers WHERE irrelevant_at IS NOT NULL") == [(ids["deep"],)]
    status = dict(_query(conn, "SELECT paper_id, status FROM review_tasks"))
    assert status == {ids["torn"]: "answered", ids["deep"]: "irrelevant", ids["sure"]: "expired"}
    summary = _ti(run, "collect_and_apply").xcom_pull(task_ids="collect_and_apply")
    assert summary["curated"] == 1 and summary["irrelevant"] == 1 and summary["rejected"] == 0


@pytest.mark.slow
def test_ground_truth_at_the_deadline_stops_the_job_and_keeps_the_answers(
    airflow_db,
    store,  # noqa: F811 (the review store fixture)
    petal_home,
    ground_truth_jobs,
):
    conn, ids = store["conn"], store["ids"]
    ground_truth_jobs.complete_at_once = False
    ground_truth_jobs.workers = lambda line: (
        {"verdict": "not_sure", "labels": []} if line["petal"]["paper_id"] == ids["torn"] else None
    )
    run = _run(
        {"backend": "ground_truth", "papers": 3, "selection": "uncertain", "timeout_hours": 0}
    )
    assert run.state == "success", [(t.task_id, t.state) for t in run.get_task_instances()]
    (job,) = ground_truth_jobs.jobs.values()
    assert job["status"] == "Stopped"
    status = dict(_query(conn, "SELECT paper_id, status FROM review_tasks"))
    assert status[ids["torn"]] == "not_sure" and status[ids["sure"]] == "expired"


def test_check_config_names_what_ground_truth_lacks(store, monkeypatch):  # noqa: F811
    from petal_labeller.airflow.review.flow import _problems

    for name in ("PETAL_S3_BUCKET", "PETAL_GROUND_TRUTH_WORKTEAM"):
        monkeypatch.delenv(f"AIRFLOW_VAR_{name}", raising=False)
    problems = _problems("ground_truth")
    assert "Airflow Variable 'petal_ground_truth_workteam' is not set" in problems
    assert "Airflow Variable 'petal_s3_bucket' is not set" in problems
    assert _problems("label_studio") == ["connection 'petal_label_studio' is not defined"]


def test_label_studio_connection_token_is_the_password(monkeypatch):
    from petal_labeller.airflow.review.flow import label_studio_client

    monkeypatch.setenv(
        "AIRFLOW_CONN_PETAL_LABEL_STUDIO",
        json.dumps({"conn_type": "http", "host": "ls.example.org", "schema": "https", "port": 8443,
                    "password": "legacy-token"}),
    )  # fmt: skip
    client = label_studio_client()
    assert client.url == "https://ls.example.org:8443"
    assert client._session.headers["Authorization"] == "Token legacy-token"


def test_a_job_sagemaker_refuses_leaves_no_task_open(store, ground_truth_jobs):  # noqa: F811
    from types import SimpleNamespace

    from botocore.exceptions import ClientError

    from petal_labeller.airflow.review.ground_truth_jobs import start_job
    from petal_labeller.review.selection import select_papers
    from tests.review.conftest import TREE

    conn = store["conn"]
    records = select_papers(conn, TREE, 3, "uncertain", neighbours=0)
    ground_truth_jobs.refuse = "ResourceLimitExceeded"
    context = {"ti": SimpleNamespace(try_number=1), "run_id": "manual__2026-12-02"}
    with pytest.raises(ClientError, match="ResourceLimitExceeded"):
        start_job(conn, records, TREE, "petal-review-papers-0123", context)
    assert _query(conn, "SELECT DISTINCT status FROM review_tasks") == [("expired",)]
    assert len(select_papers(conn, TREE, 3, "uncertain", neighbours=0)) == 3  # sendable again


def test_a_worker_without_scikit_learn_is_told_which_extra_the_run_needs(monkeypatch):
    """The [airflow] extra alone (MWAA) has no scikit-learn: check_config names [review]
    for the picks that need it, and lets the rest run."""
    import sys

    from petal_labeller.airflow.review.flow import _missing_packages

    assert _missing_packages("files", "mixed") == []  # this venv has it
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` fails, as there
    assert _missing_packages("ground_truth", "uncertain") == []
    [problem] = _missing_packages("label_studio", "diverse")
    assert "the diverse selection need scikit-learn" in problem
    assert "petal-labeller[airflow,review]" in problem
    [problem] = _missing_packages("files", "uncertain")
    assert problem.startswith("a review file's similar papers need scikit-learn")
