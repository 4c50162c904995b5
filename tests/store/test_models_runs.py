from datetime import UTC, datetime

import pytest

from petal_labeller.store.models import (
    get_model_version,
    list_model_versions,
    production_model,
    promote,
    register_model_version,
)
from petal_labeller.store.runs import finish_run, get_run, list_runs, start_run
from petal_labeller.store.unit import StoreError


def test_register_promote_and_reregister(db_conn):
    assert production_model(db_conn) is None
    v1 = register_model_version(
        db_conn,
        "v1",
        base_model="minilm",
        artefact_uri="s3://b/v1.tar.gz",
        metrics={"f1": 0.4},
        promote=True,
    )
    assert (v1.is_production, v1.metrics) == (True, {"f1": 0.4})
    register_model_version(db_conn, "v2", base_model="minilm", artefact_uri="s3://b/v2.tar.gz")
    assert production_model(db_conn).version == "v1"

    promote(db_conn, "v2")
    assert production_model(db_conn).version == "v2"
    assert get_model_version(db_conn, "v1").is_production is False

    again = register_model_version(
        db_conn, "v2", base_model="minilm", artefact_uri="s3://b/v2b", metrics={"f1": 1}
    )
    assert (again.artefact_uri, again.metrics, again.is_production) == (
        "s3://b/v2b",
        {"f1": 1},
        True,
    )
    assert {m.version for m in list_model_versions(db_conn)} == {"v1", "v2"}


def test_promoting_an_unknown_version_is_refused(db_conn):
    with pytest.raises(StoreError, match="'v9' is not registered"):
        promote(db_conn, "v9")


def test_run_lifecycle_and_retry(db_conn):
    register_model_version(db_conn, "v1", base_model="m", artefact_uri="file:///v1")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 2, tzinfo=UTC)
    run = start_run(
        db_conn, "r1", "v1", interval_start=start, interval_end=end, airflow_run_id="scheduled__1"
    )
    assert (run.status, run.interval_start, run.airflow_run_id) == (
        "running",
        start,
        "scheduled__1",
    )

    failed = finish_run(db_conn, "r1", "failed", papers_selected=10, error="boom")
    assert (failed.status, failed.papers_selected, failed.error) == ("failed", 10, "boom")

    retried = start_run(db_conn, "r1", "v1", interval_start=start, interval_end=end)
    assert (retried.status, retried.papers_selected, retried.error, retried.finished_at) == (
        "running",
        None,
        None,
        None,
    )
    done = finish_run(
        db_conn, "r1", papers_selected=10, papers_labelled=9, labels_written=40, papers_rejected=1
    )
    assert (done.status, done.papers_labelled, done.labels_written, done.papers_rejected) == (
        "success",
        9,
        40,
        1,
    )
    assert get_run(db_conn, "r1") == done
    assert [r.run_id for r in list_runs(db_conn)] == ["r1"]


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda c: start_run(c, "r", "nope"), "not registered"),
        (lambda c: finish_run(c, "never", "success"), "never started"),
        (lambda c: finish_run(c, "r", "maybe"), "must be success or failed"),
    ],
)
def test_run_errors_are_clear(db_conn, call, needle):
    with pytest.raises(StoreError, match=needle):
        call(db_conn)
