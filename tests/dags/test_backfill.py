"""Backfilling `petal_label_papers`: one run per day labels that day's papers, once."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import closing
from datetime import datetime

import pytest

from petal_labeller.store.connection import connect
from tests.fixtures.airflow import load_dag

pytestmark = pytest.mark.slow

DAYS = [datetime.fromisoformat(f"2026-11-0{day}T00:00:00+00:00") for day in (4, 5, 6)]


def _query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_each_interval_labels_its_own_papers_and_a_rerun_of_all_changes_nothing(
    airflow_db, labelling_database, petal_home
):
    url = labelling_database
    # Spread the papers over three days: 4, 5 (one unreadable) and 3.
    with closing(connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            """UPDATE papers SET ingested_at = %s::timestamptz
                   + (CASE WHEN source = 'test:bad-text' THEN 1 ELSE (rank - 1) / 4 END)
                     * interval '1 day' + interval '6 hours'
               FROM (SELECT id, rank() OVER (ORDER BY id) AS rank FROM papers) ranked
               WHERE ranked.id = papers.id""",
            (DAYS[0],),
        )
    dag = load_dag("petal_label_papers")

    for day in DAYS:  # what `airflow backfill create` schedules: one run per day, dated that day
        run = dag.test(logical_date=day)
        assert run.state == "success", run.run_id

    per_run = _query(
        url,
        "SELECT interval_start::date::text, papers_selected, papers_labelled, papers_rejected "
        "FROM labelling_runs ORDER BY interval_start",
    )
    assert per_run == [
        ("2026-11-04", 4, 4, 0),
        ("2026-11-05", 5, 4, 1),
        ("2026-11-06", 3, 3, 0),
    ]
    labels = _query(url, "SELECT * FROM paper_labels ORDER BY paper_id, label_id")
    assert _query(url, "SELECT count(*), count(DISTINCT paper_id) FROM paper_labelling") == [
        (11, 11)
    ]

    for day in DAYS:  # a backfill with --reprocess-behavior completed
        assert dag.test(logical_date=day).state == "success"

    assert _query(url, "SELECT * FROM paper_labels ORDER BY paper_id, label_id") == labels


def test_backfill_cli_plans_one_run_per_day(airflow_db, dag_bag):
    # The DAG must be in the metadata database, as the DAG processor would put it (its
    # bundle first: alone, this test found no bundle row to point the DAG at).
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(dag_bag, "dags-folder", None)
    result = subprocess.run(
        [
            sys.executable, "-m", "airflow", "backfill", "create", "--dag-id",
            "petal_label_papers", "--from-date", "2026-11-14", "--to-date", "2026-11-16",
            "--dry-run",
        ],
        capture_output=True, text=True, timeout=180, env=os.environ.copy(), check=True,
    )  # fmt: skip
    planned = [line for line in result.stdout.splitlines() if line.startswith("| 2026-11-1")]
    assert len(planned) == 3, result.stdout
