"""`petal_train_model` end to end with `dag.test()` on the local backend, with a tiny recipe."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime

import pytest

from petal_labeller.store.connection import connect
from tests.fixtures.airflow import CURATED_PAPERS, TINY_TRAINING, load_dag

pytestmark = pytest.mark.slow


def _versions(url):
    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT version, is_production, metrics FROM model_versions ORDER BY version")
        return cur.fetchall()


def _asset_events():
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.execute(
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "petal_production_model")
        ).all()


@pytest.fixture
def relabel_dag_unpaused(dag_bag):
    """The DAGs registered as the DAG processor would, with `petal_relabel_papers` switched on."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, update

    def pause(paused: bool) -> None:
        with create_session() as session:
            session.execute(
                update(DagModel)
                .where(DagModel.dag_id == "petal_relabel_papers")
                .values(is_paused=paused)
            )
            session.execute(
                delete(AssetDagRunQueue).where(
                    AssetDagRunQueue.target_dag_id == "petal_relabel_papers"
                )
            )

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(dag_bag, "dags-folder", None)
    pause(False)
    yield
    pause(True)


def _dags_the_scheduler_would_start() -> set[str]:
    """Ask the scheduler's own query which DAGs are due a run (asset-triggered included)."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        _, asset_triggered = DagModel.dags_needing_dagruns(session)
        session.rollback()  # the query locks rows for a scheduler loop; let them go
        return set(asset_triggered)


def test_first_model_is_promoted_and_announced_then_a_dry_run_promotes_nothing(
    airflow_db, curated_database, petal_home, relabel_dag_unpaused
):
    url = curated_database
    dag = load_dag("petal_train_model")
    events_before = len(_asset_events())

    run = dag.test(
        logical_date=datetime(2026, 11, 8, tzinfo=UTC),
        run_conf={"model_version": "cand-1", "train_options": TINY_TRAINING, "dry_run": False},
    )

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states["sagemaker.train"] == "skipped"
    assert states["promote"] == "success"
    ((version, production, metrics),) = _versions(url)
    assert (version, production) == ("cand-1", True)
    assert {"micro_F1", "P@1", "papers"} <= set(metrics)
    assert 0 < metrics["papers"] < CURATED_PAPERS  # scored on the held-out papers only
    assert (petal_home / "models" / "cand-1" / "model.tar.gz").is_file()
    events = _asset_events()
    assert len(events) == events_before + 1
    assert events[-1].extra["version"] == "cand-1"
    # The promotion queues the relabelling DAG, scheduled on the asset, for the scheduler.
    assert "petal_relabel_papers" in _dags_the_scheduler_would_start()
    assert not any((petal_home / "runs").rglob("*.jsonl")), "workspace must be cleaned up"

    dry = load_dag("petal_train_model").test(
        logical_date=datetime(2026, 11, 15, tzinfo=UTC),
        run_conf={"model_version": "cand-2", "train_options": TINY_TRAINING, "dry_run": True},
    )

    dry_states = {ti.task_id: ti.state for ti in dry.get_task_instances()}
    assert dry.state == "success", dry_states
    assert dry_states["evaluate"] == "success"
    assert dry_states["promote"] == "skipped"
    assert [(v, p) for v, p, _ in _versions(url)] == [("cand-1", True)]
    assert len(_asset_events()) == events_before + 1
