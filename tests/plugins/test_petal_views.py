"""The PeTaL page's run and paper views, dry runs and rounded metrics, in Airflow's own
API server app (issue 23 items 2, 10 and 11)."""

from __future__ import annotations

import json
from contextlib import closing
from urllib.parse import quote

import pytest

from tests.fixtures.airflow import TEST_PASSWORD, TEST_USER

pytestmark = pytest.mark.slow

RUN, DRY = "petal_label_papers/scheduled__r1", "petal_label_papers/manual__dry"
HOSTILE = '<script>alert("title")</script> & co'


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
def papers(labelling_database) -> list[int]:
    """A run that labelled 11 papers, a dry run that wrote nothing, a curator label set
    through a review, a hostile title, and metrics as a training run stores them."""
    from petal_labeller.store import labels, runs
    from petal_labeller.store.connection import connect

    with closing(connect(labelling_database)) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM papers WHERE source <> 'test:bad-text' ORDER BY id")
            ids = [row[0] for row in cur.fetchall()]
            cur.execute("UPDATE papers SET title = %s WHERE id = %s", (HOSTILE, ids[0]))
            cur.execute(
                "INSERT INTO paper_labels (paper_id, label_id, origin, curated_by) "
                "VALUES (%s, 'change_size_or_color', 'curator', 'ana')",
                (ids[0],),
            )
            cur.execute(
                """UPDATE model_versions SET metrics = '{"micro_F1": 0.5840289371174179,
                   "P@1": 0.76543219, "P@3": 0.5}' WHERE version = 'tiny'"""
            )
        runs.start_run(conn, RUN, "tiny", airflow_run_id="scheduled__r1")
        rows = [(paper, "move", 0.9) for paper in ids] + [(ids[0], "attach", 0.7)]
        labels.upsert_model_labels(conn, rows, "tiny", RUN)
        runs.finish_run(conn, RUN, papers_selected=11, papers_labelled=11, labels_written=12)
        runs.start_run(conn, DRY, "tiny", airflow_run_id="manual__dry")
        runs.finish_run(conn, DRY, papers_selected=11, papers_labelled=11, labels_written=0)
        with conn, conn.cursor() as cur:  # as the labelling run records a dry run
            cur.execute(
                "UPDATE labelling_runs SET dry_run = true, labels_proposed = 12 WHERE run_id = %s",
                (DRY,),
            )
    return ids


def test_the_runs_table_links_each_run_and_marks_the_dry_run(client, papers):
    summary = client.get("/petal/api/summary").json()
    by_id = {run["run_id"]: run for run in summary["runs"]}

    assert by_id[DRY]["dry_run"] is True and by_id[DRY]["labels_proposed"] == 12
    assert by_id[RUN]["dry_run"] is False
    assert by_id[RUN]["detail_link"] == f"run?id={quote(RUN, safe='')}"
    html = client.get("/petal/").text
    [dry_row] = [row for row in html.split("<tr") if "manual__dry" in row]
    assert '<span class="dry-run">dry run</span>' in dry_row and "would write 12" in dry_row
    assert f'href="run?id={quote(RUN, safe="")}"' in html
    # Each paper waiting for review opens its labels too.
    assert '<a class="muted paper-detail" href="paper?id=' in html


def test_model_metrics_are_rounded_in_the_json_and_on_the_page(client, papers):
    [model] = client.get("/petal/api/summary").json()["model_versions"]

    assert model["metrics"] == {"micro_F1": 0.584, "P@1": 0.7654, "P@3": 0.5}
    html = client.get("/petal/").text
    assert "0.5840289371174179" not in html and "0.76543219" not in html
    assert '<td class="metric">0.584</td><td class="metric">0.765</td>' in html


def test_a_run_view_lists_the_papers_and_labels_it_wrote(client, papers):
    reply = client.get("/petal/api/run", params={"id": RUN})

    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["run"]["run_id"] == RUN and data["papers_total"] == 11
    assert [p["paper_id"] for p in data["papers"]] == papers
    first = data["papers"][0]
    assert [(label["label"], label["score"]) for label in first["labels"]] == [
        ("move", pytest.approx(0.9)),
        ("attach", pytest.approx(0.7)),
    ]
    assert first["link"] == f"paper?id={papers[0]}"
    html = client.get("/petal/run", params={"id": RUN}).text
    assert html.count('<tr class="paper">') == 11
    assert HOSTILE not in html and "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in html
    assert f'href="paper?id={papers[0]}"' in html and "None" not in html


def test_a_dry_run_view_says_what_it_would_have_written(client, papers):
    data = client.get("/petal/api/run", params={"id": DRY}).json()

    assert data["run"]["dry_run"] is True and data["papers"] == []
    html = client.get("/petal/run", params={"id": DRY}).text
    assert '<span class="dry-run">dry run</span>' in html and "would have written 12" in html
    assert 'id="dry-run-note"' in html and "no paper carries labels from this run" in html


def test_a_paper_view_shows_curator_and_model_labels_with_scores_and_versions(client, papers):
    reply = client.get("/petal/api/paper", params={"id": papers[0]})

    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["title"] == HOSTILE
    assert [(c["label"], c["curated_by"]) for c in data["curator"]] == [
        ("change_size_or_color", "ana")
    ]
    [tiny] = data["models"]
    assert (tiny["model_version"], tiny["run_id"]) == ("tiny", RUN)
    assert [(m["label"], m["score"]) for m in tiny["labels"]] == [("move", 0.9), ("attach", 0.7)]
    html = client.get("/petal/paper", params={"id": papers[0]}).text
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert f'href="run?id={quote(RUN, safe="")}"' in html and "0.900" in html


def test_the_views_refuse_unknown_and_unusable_ids(client, papers):
    assert client.get("/petal/api/run", params={"id": "petal_label_papers/nope"}).status_code == 404
    assert client.get("/petal/paper", params={"id": 10**12}).status_code == 404
    for path, bad in (("/petal/run", "x" * 501), ("/petal/paper", "0"), ("/petal/paper", "a")):
        assert client.get(path, params={"id": bad}).status_code == 422, (path, bad)
    assert client.get("/petal/api/run").status_code == 422


@pytest.mark.parametrize("path", ["/petal/run?id=x", "/petal/api/run?id=x", "/petal/paper?id=1"])
def test_the_views_are_closed_to_anonymous_users(api_app, path):
    from fastapi.testclient import TestClient

    with TestClient(api_app) as anonymous:
        assert anonymous.get(path).status_code == 401


def test_the_views_leak_no_server_paths(client, papers):
    texts = [
        json.dumps(client.get("/petal/api/run", params={"id": RUN}).json()),
        json.dumps(client.get("/petal/api/paper", params={"id": papers[1]}).json()),
        client.get("/petal/run", params={"id": RUN}).text,
    ]
    assert not any("/tmp/" in text or ".venv" in text for text in texts)


def test_a_paper_called_not_relevant_or_out_with_curators_says_so(
    client, papers, labelling_database
):
    """Issue 27: "not biomimicry relevant" and an open review task show on the paper view,
    and the page counts both (who marked it is escaped like any text)."""
    from petal_labeller.store import review_tasks
    from petal_labeller.store.connection import connect

    with closing(connect(labelling_database)) as conn:
        review_tasks.mark_irrelevant(conn, [(papers[1], HOSTILE, "2026-11-30T09:00:00Z")])
        review_tasks.record_tasks(conn, "label_studio", "7", [("41", papers[2], "tiny")])
    data = client.get("/petal/api/paper", params={"id": papers[1]}).json()
    assert data["irrelevant"] == {"by": HOSTILE, "at": "2026-11-30T09:00:00+00:00"}
    assert data["with_curators"] is None
    html = client.get("/petal/paper", params={"id": papers[1]}).text
    assert "Not biomimicry relevant" in html and "<script>" not in html
    out = client.get("/petal/api/paper", params={"id": papers[2]}).json()
    assert out["irrelevant"] is None
    assert (out["with_curators"]["backend"], out["with_curators"]["batch"]) == ("label_studio", "7")
    assert (
        "Out with curators: label_studio batch 7"
        in client.get("/petal/paper", params={"id": papers[2]}).text
    )
    review = client.get("/petal/api/summary").json()["needs_review"]
    assert (review["with_curators"], review["irrelevant"]) == (1, 1)
    assert "1 out with curators" in client.get("/petal/").text
