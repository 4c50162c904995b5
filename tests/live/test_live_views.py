"""Issue 23 items 2, 10 and 11 in a live Airflow: a VIEWER opens a run's papers and labels
and a paper's labels on the PeTaL page, sees a dry run marked with what it would have
written, and the DAG's Params (REST API v2) give the trigger form a labelled backend
choice and an optional instance type.

Runs on its own too (`-k live_views`): with no production model yet it registers the
tiny one, whose Asset event starts the relabelling run that labels every paper.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from petal_labeller.config import SHARED_DATA_DIR
from tests.fixtures.airflow import write_unlabelled_papers
from tests.live.conftest import VIEWER, Airflow

pytestmark = pytest.mark.slow

LABEL, RELABEL = "petal_label_papers", "petal_relabel_papers"


@pytest.fixture(scope="module")
def labelled(airflow_services: Airflow, tmp_path_factory, request) -> Airflow:
    """A production model and at least one run that wrote labels."""
    live = airflow_services
    if not live.query("SELECT 1 FROM model_versions WHERE is_production"):
        tmp = tmp_path_factory.mktemp("views")
        live.petal("taxonomy", "load", str(SHARED_DATA_DIR / "taxonomy.json"))
        papers = write_unlabelled_papers(tmp / "papers.jsonl", start=900, count=4)
        live.petal("papers", "import", str(papers), "--ingested-at", "2020-01-01")
        relabels = len(live.runs(RELABEL))
        tar = request.getfixturevalue("tiny_model_tar")
        live.petal("model", "register", str(tar), "--version", "v-views", "--promote")
        live.wait_for_runs(RELABEL, relabels + 1, timeout=300)
    return live


def _viewer(live: Airflow, path: str, **params) -> dict:
    reply = live.api("GET", path, user=VIEWER, params=params)
    assert reply.status_code == 200, (path, reply.status_code, reply.text[:500])
    return reply.json()


def _no_server_paths(live: Airflow, text: str) -> None:
    assert str(live.home) not in text and ".venv" not in text and "/tmp/" not in text


def test_a_viewer_opens_a_runs_papers_and_labels_and_a_papers_labels(labelled: Airflow):
    live = labelled
    [(run_id, papers)] = live.query(
        "SELECT run_id, count(*) FROM paper_labelling WHERE run_id IS NOT NULL "
        "GROUP BY run_id HAVING max(label_count) > 0 ORDER BY count(*) DESC, run_id LIMIT 1"
    )
    summary = _viewer(live, "/petal/api/summary")
    assert all(r["detail_link"] == f"run?id={quote(r['run_id'], safe='')}" for r in summary["runs"])

    run = _viewer(live, "/petal/api/run", id=run_id)

    assert run["run"]["run_id"] == run_id and run["papers_total"] == papers
    assert run["papers"] and all(p["labels"] for p in run["papers"] if p["label_count"])
    written = next(p for p in run["papers"] if p["labels"])
    html = live.api("GET", "/petal/run", user=VIEWER, params={"id": run_id}).text
    assert html.count('<tr class="paper">') == len(run["papers"]) and "None" not in html
    _no_server_paths(live, json.dumps(run) + html)

    paper = _viewer(live, "/petal/api/paper", id=written["paper_id"])

    [(title,)] = live.query("SELECT title FROM papers WHERE id = %s", (written["paper_id"],))
    assert paper["title"] == title
    [by_run] = [m for m in paper["models"] if m["run_id"] == run_id]
    assert {label["label"] for label in by_run["labels"]} == {
        label["label"] for label in written["labels"]
    }
    html = live.api("GET", "/petal/paper", user=VIEWER, params={"id": paper["paper_id"]}).text
    assert 'id="curator-labels"' in html and "None" not in html
    _no_server_paths(live, json.dumps(paper) + html)
    assert (
        live.api("GET", "/petal/api/run", user=VIEWER, params={"id": "no/such"}).status_code == 404
    )


def test_a_dry_run_shows_on_the_page_with_what_it_would_have_written(labelled: Airflow, tmp_path):
    """Item 2: the run row is the labelling run's (issue 23 item 2); the page marks it."""
    live = labelled
    new = write_unlabelled_papers(tmp_path / "dry.jsonl", start=950, count=2)
    live.petal("papers", "import", str(new))  # ingested now: in any manual run's interval
    before = {r["dag_run_id"] for r in live.runs(LABEL)}
    live.set_paused(LABEL, False)
    triggered = live.ok(
        "POST",
        f"/api/v2/dags/{LABEL}/dagRuns",
        json={"logical_date": None, "conf": {"dry_run": True}},
    )
    assert triggered["dag_run_id"] not in before
    [done] = live.wait_for_runs(LABEL, 1, lambda r: r["dag_run_id"] == triggered["dag_run_id"])
    assert done["state"] == "success", live.task_instances(LABEL, done["dag_run_id"])

    runs = _viewer(live, "/petal/api/summary")["runs"]
    [dry] = [r for r in runs if r["airflow_run_id"] == done["dag_run_id"]]
    assert dry["dry_run"] is True and dry["labels_proposed"] is not None, dry
    assert dry["labels_written"] in (0, None)
    page = live.api("GET", "/petal/", user=VIEWER).text
    [row] = [row for row in page.split("<tr") if done["dag_run_id"] in row]
    assert '<span class="dry-run">dry run</span>' in row
    assert f"would write {dry['labels_proposed']}" in row
    view = live.api("GET", "/petal/run", user=VIEWER, params={"id": dry["run_id"]}).text
    assert f"would have written {dry['labels_proposed']}" in view
    [(written,)] = live.query(
        "SELECT count(*) FROM paper_labelling WHERE run_id = %s", (dry["run_id"],)
    )
    assert written == 0


def test_the_dags_params_give_the_form_a_labelled_backend_and_an_optional_instance_type(
    labelled: Airflow,
):
    """Item 11, as the API server hands the Params to the trigger form."""
    details = _viewer(labelled, f"/api/v2/dags/{LABEL}/details")
    params = details["params"]
    backend, instance = params["backend"]["schema"], params["instance_type"]["schema"]

    labels = backend.get("values_display") or {}
    # The 3.3 form labels the empty choice by values_display["null"], else ["None"],
    # else it shows the literal "null".
    assert None in backend["enum"] and "default" in (labels.get("null") or labels.get("None")), (
        backend
    )
    assert "null" in instance["type"], instance  # the form requires a type without null
    assert params["instance_type"]["value"] == "ml.m5.xlarge"
