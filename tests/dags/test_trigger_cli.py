"""`airflow dags trigger` with Params: valid conf makes a queued run, invalid conf is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _airflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True, text=True, timeout=180, env=os.environ.copy(),
    )  # fmt: skip


@pytest.fixture
def dags_in_metadata_db(airflow_db, dag_bag):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(dag_bag, "dags-folder", None)


def test_trigger_with_params_queues_a_run_with_that_conf(dags_in_metadata_db):
    conf = {"backend": "local", "max_papers": 50, "dry_run": True}

    result = _airflow("dags", "trigger", "petal_label_papers", "--conf", json.dumps(conf))

    assert result.returncode == 0, result.stderr
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == "petal_label_papers")
            .order_by(DagRun.id.desc())
            .limit(1)
        ).one()
        assert run.conf == conf
        assert run.state == "queued"


def test_trigger_with_invalid_params_is_refused(dags_in_metadata_db):
    result = _airflow("dags", "trigger", "petal_label_papers", "--conf", '{"backend": "azure"}')

    assert result.returncode != 0
    assert "param" in (result.stdout + result.stderr).lower()
