"""`petal_label_papers` end to end with `dag.test()`: real Airflow, PostgreSQL and model."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime

import pytest

from petal_labeller.store.connection import connect
from tests.fixtures.airflow import RUN_DATE_ISO, load_dag

pytestmark = pytest.mark.slow

RUN_DATE = datetime.fromisoformat(RUN_DATE_ISO)


def _query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _model_labels(url: str) -> list[tuple]:
    return _query(
        url,
        "SELECT paper_id, label_id, score, model_version, run_id, labelled_at FROM paper_labels "
        "WHERE origin = 'model' ORDER BY paper_id, label_id",
    )


def _states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_new_papers_get_labels_bad_text_is_reported_and_a_rerun_changes_nothing(
    airflow_db, labelling_database, petal_home
):
    url = labelling_database
    dag = load_dag("petal_label_papers")

    first = dag.test(logical_date=RUN_DATE)

    assert first.state == "success", _states(first)
    assert _states(first)["nothing_to_label"] == "skipped"
    assert _states(first)["sagemaker.create_model"] == "skipped"
    labelled = _query(url, "SELECT paper_id FROM paper_labelling WHERE model_version = 'tiny'")
    assert len(labelled) == 11
    bad = _query(url, "SELECT id FROM papers WHERE source = 'test:bad-text'")[0][0]
    assert (bad,) not in labelled
    labels = _model_labels(url)
    assert {row[0] for row in labels} == {row[0] for row in labelled}
    assert all(0.0 <= row[2] <= 1.0 for row in labels)
    # Hierarchy-consistent: every chosen label's parent is chosen too.
    parents = dict(_query(url, "SELECT id, parent FROM taxonomy_labels"))
    chosen = {(row[0], row[1]) for row in labels}
    assert all(
        parents[label] is None or (paper, parents[label]) in chosen for paper, label in chosen
    )

    run_row = _query(
        url,
        "SELECT status, papers_selected, papers_labelled, papers_rejected, labels_written, "
        "airflow_run_id, interval_start, interval_end FROM labelling_runs",
    )
    assert len(run_row) == 1
    status, selected, done, rejected, written, airflow_run_id, start, end = run_row[0]
    assert (status, selected, done, rejected, written) == ("success", 12, 11, 1, len(labels))
    assert airflow_run_id == first.run_id
    assert (start.isoformat(), end.isoformat()) == (RUN_DATE_ISO, "2026-11-03T00:00:00+00:00")

    quarantine = list((petal_home / "quarantine").rglob("*.jsonl"))
    assert len(quarantine) == 1
    report = quarantine[0].read_text()
    assert f'"paper_id": {bad}' in report and "both empty" in report
    assert not any((petal_home / "runs").rglob("*.jsonl")), "workspace must be cleaned up"

    second = dag.test(logical_date=RUN_DATE)

    assert second.state == "success", _states(second)
    assert _model_labels(url) == labels
    again = _query(
        url,
        "SELECT papers_selected, papers_labelled, papers_rejected, labels_written "
        "FROM labelling_runs WHERE airflow_run_id = %s",
        (second.run_id,),
    )
    assert again == [(1, 0, 1, 0)], "only the unreadable paper is pending, and it is reported again"


def test_empty_window_is_a_quick_success_recorded_with_zero_papers(
    airflow_db, labelling_database, petal_home
):
    dag = load_dag("petal_label_papers")

    run = dag.test(logical_date=datetime.fromisoformat("2026-11-10T00:00:00+00:00"))

    states = _states(run)
    assert run.state == "success", states
    assert states["nothing_to_label"] == "success"
    assert states["infer_local"] == "skipped"
    assert states["write_labels"] == "skipped"
    assert states["sagemaker.create_model"] == "skipped"
    assert states["cleanup"] == "success"
    # "Succeeded doing nothing" is a finished run row with 0 papers, not a missing row.
    assert _query(
        labelling_database,
        "SELECT status, papers_selected, labels_written, airflow_run_id, "
        "started_at <= finished_at FROM labelling_runs",
    ) == [("success", 0, 0, run.run_id, True)]
    assert _model_labels(labelling_database) == []


def test_params_limit_the_batch_and_dry_run_writes_nothing(
    airflow_db, labelling_database, petal_home
):
    url = labelling_database
    dag = load_dag("petal_label_papers")

    dry = dag.test(logical_date=RUN_DATE, run_conf={"dry_run": True, "max_papers": 3})
    assert dry.state == "success", _states(dry)
    assert _model_labels(url) == []
    # Its row, marked dry run, says what it would have written.
    [(dry_run, selected, written, proposed)] = _query(
        url, "SELECT dry_run, papers_selected, labels_written, labels_proposed FROM labelling_runs"
    )
    assert (dry_run, selected, written) == (True, 3, 0) and proposed > 0

    # dag.test() keeps the last run's params on the DAG object, so say dry_run again.
    # A cap that leaves papers of the day unlabelled keeps its labels but fails the run:
    # green means the day is done (issue 23 item 1).
    capped = dag.test(
        logical_date=RUN_DATE, run_conf={"max_papers": 3, "backend": "local", "dry_run": False}
    )
    assert capped.state == "failed", _states(capped)
    assert _states(capped)["write_labels"] == "failed"
    assert _query(url, "SELECT count(*) FROM paper_labelling") == [(3,)]
    [(status, error)] = _query(
        url, "SELECT status, error FROM labelling_runs WHERE airflow_run_id = %s", (capped.run_id,)
    )
    assert status == "failed" and "still unlabelled" in error


def test_a_run_without_a_logical_date_labels_every_pending_paper(
    airflow_db, labelling_database, petal_home
):
    """`airflow dags trigger` without --logical-date (the REST API's default) has no data
    interval: the run labels every pending paper instead of failing on a missing key."""
    url = labelling_database
    run = load_dag("petal_label_papers").test(logical_date=None)

    assert run.state == "success", _states(run)
    assert len(_query(url, "SELECT 1 FROM paper_labelling WHERE model_version = 'tiny'")) == 11
    rows = _query(
        url,
        "SELECT interval_start, interval_end, status, started_at < finished_at FROM labelling_runs",
    )
    assert rows == [(None, None, "success", True)]


def test_a_failed_run_records_its_error_and_real_times(airflow_db, labelling_database, petal_home):
    """The failing task's error (redacted) lands in the run's row; started < finished."""
    url = labelling_database
    with closing(connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE model_versions SET artefact_uri = %s WHERE version = 'tiny'",
            ("s3://bucket/model.tar.gz?password=hunter2",),
        )
    run = load_dag("petal_label_papers").test(logical_date=RUN_DATE, run_conf={"backend": "local"})

    assert run.state == "failed", _states(run)
    assert _states(run)["infer_local"] == "failed"
    [(status, error, timed)] = _query(
        url, "SELECT status, error, started_at < finished_at FROM labelling_runs"
    )
    assert status == "failed" and timed
    assert error.startswith("infer_local: ") and "not on this machine" in error
    assert "hunter2" not in error
