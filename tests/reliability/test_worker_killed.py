"""The worker running a labelling DAG is SIGKILLed during inference or during the upsert:
nothing is half written, and rerunning the interval gives exactly a clean run's labels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest

from petal_labeller.model.predict import predict_file
from petal_labeller.store.connection import connect
from petal_labeller.store.papers import import_papers
from tests.fixtures.airflow import INGEST_DAY, RUN_DATE_ISO, load_dag, write_unlabelled_papers
from tests.reliability.conftest import (
    backends,
    hold_label_lock,
    query,
    snapshot,
    taxonomy,
    wait_for,
)

pytestmark = pytest.mark.slow

RUN_DATE = datetime.fromisoformat(RUN_DATE_ISO)
EXTRA_PAPERS = 60  # inference then takes a second or more: a window to kill it in

# The worker: the real DAG run by `dag.test()` in its own process, as a task runner would.
# It inherits the test's AIRFLOW_HOME, PETAL_DATABASE_URL and PETAL_HOME.
WORKER = f"""
import os
from datetime import datetime
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("petal_label_papers")
for task in dag.tasks:
    task.retries = 0
dag.test(logical_date=datetime.fromisoformat({RUN_DATE_ISO!r}))
"""


def _more_papers(url: str, tmp_path: Path) -> None:
    papers = write_unlabelled_papers(tmp_path / "more.jsonl", start=0, count=EXTRA_PAPERS)
    with closing(connect(url)) as conn:
        assert import_papers(conn, papers, taxonomy()).inserted == EXTRA_PAPERS
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE papers SET ingested_at = %s", (INGEST_DAY,))


def _start_worker(tmp_path: Path) -> subprocess.Popen:
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER], stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
    )


def _kill(worker: subprocess.Popen) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait(30) == -signal.SIGKILL


def _clean_run_labels(url: str, tmp_path: Path) -> set[tuple]:
    """What a clean run stores: the artefact's own inference over every readable paper."""
    rows = query(
        url,
        "SELECT id, doi, title, abstract, venue, url FROM papers "
        "WHERE source <> 'test:bad-text' ORDER BY ingested_at, id",
    )
    records = [
        {"paper_id": i, "doi": d, "title": t, "abstract": a, "venue": list(v), "url": u}
        for i, d, t, a, v, u in rows
    ]
    (tmp_path / "clean.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    artefact = query(url, "SELECT artefact_uri FROM model_versions WHERE is_production")[0][0]
    predict_file(artefact, tmp_path / "clean.jsonl", tmp_path / "clean.out.jsonl")
    output = (tmp_path / "clean.out.jsonl").read_text(encoding="utf-8")
    results = [json.loads(line) for line in output.split("\n")[:-1]]  # jsonlines: "\n" only
    return {
        (r["paper_id"], label, round(r["scores"][label], 5))
        for r in results
        for label in r["labels"]
    }


def _stored_labels(url: str) -> set[tuple]:
    return {
        (p, label, round(score, 5))
        for p, label, score in query(
            url, "SELECT paper_id, label_id, score FROM paper_labels WHERE origin = 'model'"
        )
    }


def _found(root: Path, name: str) -> list[Path]:
    """Files called `name` under `root`, as far as a walk racing the worker can see.

    The worker creates and renames folders while the test looks (the artefact
    cache unpacks into a temporary folder, then moves it), so a folder listed a
    moment ago may be gone: that is "not yet", not an error.
    """
    try:
        return list(root.rglob(name))
    except FileNotFoundError:
        return []


def _rerun_equals_clean_run(url: str, tmp_path: Path) -> None:
    run = load_dag("petal_label_papers").test(logical_date=RUN_DATE)
    assert run.state == "success"
    assert _stored_labels(url) == _clean_run_labels(url, tmp_path)
    papers = query(url, "SELECT count(*) FROM papers WHERE source <> 'test:bad-text'")[0][0]
    assert query(url, "SELECT count(*) FROM paper_labelling") == [(papers,)]


def test_worker_killed_during_inference_then_rerun_equals_clean_run(
    airflow_db, labelling_database, petal_home, tmp_path
):
    url = labelling_database
    _more_papers(url, tmp_path)
    before = snapshot(url)
    worker = _start_worker(tmp_path)
    try:
        wait_for(lambda: _found(petal_home / "runs", "predictions.jsonl.partial"), timeout=180)
        _kill(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert snapshot(url) == before, "a worker killed during inference wrote something"

    _rerun_equals_clean_run(url, tmp_path)


def test_worker_killed_during_upsert_then_rerun_equals_clean_run(
    airflow_db, labelling_database, petal_home, tmp_path
):
    url = labelling_database
    before = snapshot(url)
    blocker = hold_label_lock(url, "tiny")
    worker = _start_worker(tmp_path)
    try:
        # Killed with its transaction open: run row, COPYed labels, waiting to merge.
        wait_for(
            lambda: [pid for pid, _, wait, sql in backends(url, exclude={blocker.get_backend_pid()})
                     if wait == "Lock" and "pg_advisory_xact_lock" in sql],
            timeout=180,
        )  # fmt: skip
        _kill(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
        blocker.close()
    # The server notices the dead client and rolls its transaction back.
    wait_for(lambda: not backends(url), timeout=30)
    assert snapshot(url) == before, "a worker killed during the upsert left a partial write"

    _rerun_equals_clean_run(url, tmp_path)
