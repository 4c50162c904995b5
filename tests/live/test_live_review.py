"""Issue 27 under the live services: a `petal_review_papers` run sends papers to a real
Label Studio, a curator answers one in headless Chromium, the scheduler's run collects
it as curator labels at its deadline and closes the rest, and the Asset it updates starts
a `petal_train_model` run that `enough_curated` stops (too few new curated papers).
"""

from __future__ import annotations

import shutil
import time
from contextlib import closing

import psycopg2
import pytest

from petal_labeller.store.reviews import review_candidates
from tests.fixtures.airflow import write_unlabelled_papers
from tests.fixtures.label_studio_browser import curate_in_the_browser
from tests.live.conftest import Airflow
from tests.live.test_live_views import labelled as labelled

# `labelled` above is a fixture (a production model and model-labelled papers).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REVIEW, TRAIN, RELABEL = "petal_review_papers", "petal_train_model", "petal_relabel_papers"
PROJECT = "PeTaL review (live)"
#: The run collects what is answered after this long (the curator answers one paper).
TIMEOUT_HOURS = 0.04


def _waiting_for_review(live: Airflow) -> int:
    """Papers a review would send now: the library's own candidates of the production model."""
    production = live.query("SELECT version FROM model_versions WHERE is_production")
    if not production:
        return 0
    with closing(psycopg2.connect(live.store_url)) as conn:
        return sum(1 for _ in review_candidates(conn, production[0][0]))


@pytest.fixture
def reviewable(labelled: Airflow, tmp_path_factory) -> Airflow:
    """Papers for the review to send, whatever ran before: a test that promoted a model
    trained on curated papers leaves a production model that labelled none of them."""
    live = labelled
    if not _waiting_for_review(live):
        papers = write_unlabelled_papers(
            tmp_path_factory.mktemp("review") / "papers.jsonl", start=980, count=6, tag="review"
        )
        live.petal("papers", "import", str(papers), "--ingested-at", "2020-01-01")
        before = len(live.runs(RELABEL))
        live.ok("POST", f"/api/v2/dags/{RELABEL}/dagRuns", json={"logical_date": None})
        live.wait_for_runs(RELABEL, before + 1, timeout=300)
        assert _waiting_for_review(live), "the relabelling run labelled no new paper"
    return live


@pytest.fixture
def on_label_studio(reviewable: Airflow, label_studio):
    """Connection `petal_label_studio` (the docs' form) and the Variables, put back after."""
    live = reviewable
    before = live.settings()
    live.ok("POST", "/api/v2/connections", json={
        "connection_id": "petal_label_studio", "conn_type": "generic",
        "host": label_studio.url, "password": label_studio.token,
    })  # fmt: skip
    for key, value in {"petal_label_studio_project": PROJECT,
                       "petal_retrain_min_curated": "1000"}.items():  # fmt: skip
        live.ok("POST", "/api/v2/variables", json={"key": key, "value": value})
    try:
        yield live
    finally:
        live.restore_settings(before)


def test_a_curator_answers_in_label_studio_and_the_scheduled_run_collects_it(
    on_label_studio: Airflow, label_studio, tmp_path, monkeypatch
):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("no chromium/chromedriver")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager downloads nothing
    live = on_label_studio
    live.set_paused(TRAIN, False)  # no weekly run is due: only the Asset starts one
    trains_before = len(live.runs(TRAIN))
    live.set_paused(REVIEW, False)
    run_id = live.ok("POST", f"/api/v2/dags/{REVIEW}/dagRuns", json={
        "logical_date": None,
        "conf": {"backend": "label_studio", "papers": 10, "selection": "uncertain",
                 "timeout_hours": TIMEOUT_HOURS},
    })["dag_run_id"]  # fmt: skip
    deadline = time.monotonic() + 300
    while not (sent := live.query(
        "SELECT batch, external_id, paper_id FROM review_tasks WHERE status = 'sent' "
        "AND backend = 'label_studio' ORDER BY external_id::bigint"
    )):  # fmt: skip
        assert time.monotonic() < deadline, live.task_instances(REVIEW, run_id)
        live.check_alive()
        time.sleep(2)
    assert 1 <= len(sent) <= 10
    batch, task, paper = sent[0]
    curate_in_the_browser(
        label_studio, int(task), int(batch), tmp_path / "chromium",
        add=("Attach", "Attach temporarily"),
    )  # fmt: skip

    [done] = live.wait_for_runs(REVIEW, 1, lambda r: r["dag_run_id"] == run_id, timeout=600)
    tis = live.task_instances(REVIEW, run_id)
    assert done["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert tis["cleanup"]["state"] == "success"
    curated = live.query(
        "SELECT label_id, curated_by FROM paper_labels WHERE paper_id = %s "
        "AND origin = 'curator' ORDER BY label_id", (paper,),
    )  # fmt: skip
    assert ("attach", label_studio.email) in curated
    assert ("attach_temporarily", label_studio.email) in curated
    status = dict(live.query(
        "SELECT status, count(*) FROM review_tasks WHERE batch = %s GROUP BY status", (batch,)
    ))  # fmt: skip
    assert status == {"answered": 1, **({"expired": len(sent) - 1} if len(sent) > 1 else {})}

    # The Asset event carries the count, and starts a retrain that stops at once.
    [event] = live.ok("GET", "/api/v2/assets/events", params={
        "source_dag_id": REVIEW, "source_run_id": run_id,
    })["asset_events"]  # fmt: skip
    assert event["name"] == "petal_curated_papers" and event["extra"]["count"] == 1, event
    [retrain] = live.wait_for_runs(
        TRAIN, 1, lambda r: r["run_type"] == "asset_triggered", timeout=300
    )
    assert len(live.runs(TRAIN)) == trains_before + 1
    tis = live.task_instances(TRAIN, retrain["dag_run_id"])
    assert retrain["state"] == "success"
    assert tis["enough_curated"]["state"] == "success" and tis["export"]["state"] == "skipped"

    # A second collect from the CLI finds nothing left to apply.
    live.env["PETAL_LABEL_STUDIO_TOKEN"] = label_studio.token
    try:
        out = live.petal("review", "collect", "--backend", "label_studio",
                         "--label-studio-url", label_studio.url)  # fmt: skip
    finally:
        live.env.pop("PETAL_LABEL_STUDIO_TOKEN")
    assert "0 papers curated" in out.stdout, out.stdout + out.stderr
    assert label_studio.token not in out.stdout + out.stderr
