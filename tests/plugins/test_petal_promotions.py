"""The PeTaL page shows each promotion: who decided and why, the churn the gate expected
and what the relabel changed, and which papers a relabel kept (issue 26 items 2-3), in
Airflow's own API server app."""

from __future__ import annotations

from contextlib import closing

import pytest

from tests.fixtures.airflow import TEST_PASSWORD, TEST_USER

pytestmark = pytest.mark.slow

DAILY, RELABEL = "petal_label_papers/scheduled__d1", "petal_relabel_papers/manual__r2"
COMMENT = 'Same numbers; <b>fine</b> & "go"'
CHURN = {"changed": 3, "papers": 150, "fraction": 0.02, "sample": False, "population": 150,
         "labels_added": 2, "labels_removed": 1}  # fmt: skip


@pytest.fixture(scope="module")
def api_app(airflow_db):
    from airflow.api_fastapi.app import create_app

    return create_app()


@pytest.fixture
def client(api_app):
    from fastapi.testclient import TestClient

    with TestClient(api_app) as test_client:
        token = test_client.post(
            "/auth/token", json={"username": TEST_USER, "password": TEST_PASSWORD}
        ).json()["access_token"]
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


@pytest.fixture
def promoted(labelling_database) -> list[int]:
    """tiny labelled 11 papers; tiny-2, approved by ana, relabelled them changing one;
    tiny-3 was rejected by bo and stays registered."""
    from petal_labeller.pipeline.validate import CheckedOutput
    from petal_labeller.pipeline.write import RunRecord, write_labels
    from petal_labeller.store import promotions, runs
    from petal_labeller.store.connection import connect
    from petal_labeller.store.models import register_model_version

    url = labelling_database
    with closing(connect(url)) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM papers WHERE source <> 'test:bad-text' ORDER BY id")
            ids = [row[0] for row in cur.fetchall()]
        rows = [(paper, "move", 0.9) for paper in ids]
        runs.start_run(conn, DAILY, "tiny", airflow_run_id="scheduled__d1")
        write_labels(RunRecord(DAILY, "tiny", database_url=url), CheckedOutput(rows, ids),
                     papers_selected=11)  # fmt: skip
        for version in ("tiny-2", "tiny-3"):
            register_model_version(conn, version, base_model="m", artefact_uri="x")
        register_model_version(conn, "tiny-2", base_model="m", artefact_uri="x", promote=True)
        comparison = {"heldout_churn": CHURN, "store_churn": {**CHURN, "sample": True}}
        promotions.record_decision(
            conn, "tiny-2", "approved", decided_by="ana", comment=COMMENT, comparison=comparison
        )
        promotions.record_decision(conn, "tiny-3", "rejected", decided_by="bo", comment="no")
        runs.start_run(conn, RELABEL, "tiny-2", airflow_run_id="manual__r2")
    changed = [(ids[0], "attach", 0.8), *rows[1:]]
    summary = write_labels(
        RunRecord(RELABEL, "tiny-2", database_url=url), CheckedOutput(changed, ids),
        papers_selected=11,
    )  # fmt: skip
    assert summary.papers_changed == 1
    return ids


def test_the_page_shows_who_decided_their_comment_and_the_churn(client, promoted):
    summary = client.get("/petal/api/summary").json()
    by_version = {model["version"]: model for model in summary["model_versions"]}

    approved = by_version["tiny-2"]
    assert (approved["decision"], approved["decided_by"], approved["decision_comment"]) == (
        "approved", "ana", COMMENT,
    )  # fmt: skip
    assert approved["relabel"] == {"runs": 1, "papers": 11, "changed": 1, "fraction": 0.0909}
    assert approved["expected_churn"]["store"]["sample"] is True
    rejected = by_version["tiny-3"]
    assert (rejected["decision"], rejected["is_production"], rejected["relabel"]) == (
        "rejected", False, None,
    )  # fmt: skip
    assert {run["run_id"]: run["papers_changed"] for run in summary["runs"]} == {
        DAILY: 11, RELABEL: 1,
    }  # fmt: skip

    html = client.get("/petal/").text
    [row] = [r for r in html.split('<tr class="model-version">') if r.startswith("<td>tiny-2<")]
    assert 'approved by <b class="approver">ana</b>' in row
    assert "&lt;b&gt;fine&lt;/b&gt; &amp; &#34;go&#34;" in row and "<b>fine</b>" not in row
    assert "held-out: 3 of 150 (2.0%)" in row and "store: 3 of 150 (2.0%, sample)" in row
    assert "1 of 11 papers changed (9.1%)" in row
    assert 'rejected by <b class="approver">bo</b>' in html
    assert '<td class="changed">1</td>' in html


def test_a_relabel_keeps_the_unchanged_papers_and_says_so(client, promoted):
    run = client.get("/petal/api/run", params={"id": RELABEL}).json()
    carried = {p["paper_id"]: p["carried_from"] for p in run["papers"]}
    assert carried[promoted[0]] is None
    assert {carried[p] for p in promoted[1:]} == {"tiny"}
    assert run["run"]["papers_changed"] == 1
    html = client.get("/petal/run", params={"id": RELABEL}).text
    assert html.count("unchanged, kept from tiny") == 10 and "1 changed" in html

    paper = client.get("/petal/api/paper", params={"id": promoted[1]}).json()
    versions = {m["model_version"]: m for m in paper["models"]}
    assert versions["tiny-2"]["carried_from"] == "tiny"
    assert [label["label"] for label in versions["tiny-2"]["labels"]] == ["move"]
    html = client.get("/petal/paper", params={"id": promoted[1]}).text
    assert "unchanged from tiny" in html
