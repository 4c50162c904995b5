"""The PeTaL DAGs in a live Airflow, driven only through its REST API v2 and CLI.

One story over one set of services (started once, see conftest.py), in order:
train without a logical date -> promote -> Asset -> relabel; the scheduler
catching up three days; a manual run without a logical date; logs without
ERROR lines; a seven-day backfill twice with the same rows; a misconfigured
run failing at once with one alert; `petal model register --promote` sending
the Asset event; the PeTaL page for a viewer; the commands of docs/airflow.md.
"""

from __future__ import annotations

import email
import itertools
import json
import re
import shutil
import subprocess
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from petal_labeller.airflow.defaults import default_args
from petal_labeller.config import SHARED_DATA_DIR
from tests.fixtures.airflow import TINY_TRAINING, write_unlabelled_papers
from tests.fixtures.docs import doc_blocks
from tests.live.conftest import CATCHUP_DAYS, TODAY, VIEWER, Airflow

pytestmark = pytest.mark.slow

CURATED = 60
LABEL, TRAIN, RELABEL = "petal_label_papers", "petal_train_model", "petal_relabel_papers"


def _day(days_ago: int) -> datetime:
    return TODAY - timedelta(days=days_ago)


def _import(airflow: Airflow, tmp: Path, start: int, count: int, ingested: datetime) -> None:
    papers = write_unlabelled_papers(tmp / f"papers-{start}.jsonl", start=start, count=count)
    airflow.petal("papers", "import", str(papers), "--ingested-at", ingested.isoformat())


def _production(airflow: Airflow) -> tuple[str, str] | None:
    rows = airflow.query("SELECT version, artefact_uri FROM model_versions WHERE is_production")
    return rows[0] if rows else None


@pytest.fixture(scope="module")
def live(airflow_services: Airflow, tmp_path_factory) -> Airflow:
    """The store with the taxonomy and curator-labelled papers (ingested long ago)."""
    tmp = tmp_path_factory.mktemp("live-data")
    airflow_services.petal("taxonomy", "load", str(SHARED_DATA_DIR / "taxonomy.json"))
    lines = (SHARED_DATA_DIR / "labelled_papers.jsonl").read_text(encoding="utf-8").splitlines()
    curated = tmp / "curated.jsonl"
    curated.write_text("\n".join(lines[:CURATED]) + "\n", encoding="utf-8")
    airflow_services.petal("papers", "import", str(curated), "--ingested-at", "2020-01-01")
    airflow_services.tmp = tmp  # type: ignore[attr-defined]
    return airflow_services


def test_train_without_logical_date_promotes_and_the_asset_starts_relabelling(live: Airflow):
    """Items 1 and 6: the REST API's default manual run (no logical date) trains and
    promotes; the Asset event starts petal_relabel_papers, never unpaused by hand."""
    live.set_paused(TRAIN, False)  # no scheduled run is due: the first week has not ended
    run = live.ok(
        "POST",
        f"/api/v2/dags/{TRAIN}/dagRuns",
        json={"logical_date": None, "conf": {"train_options": TINY_TRAINING}},
    )
    assert run["logical_date"] is None
    [trained] = live.wait_for_runs(TRAIN, 1, lambda r: r["dag_run_id"] == run["dag_run_id"], 600)
    assert trained["state"] == "success", live.task_instances(TRAIN, run["dag_run_id"])
    version, _ = _production(live)
    assert version.startswith(f"v{TODAY:%Y%m%d}-")

    [relabel] = live.wait_for_runs(RELABEL, 1, timeout=300)
    assert relabel["state"] == "success"
    assert relabel["run_type"] == "asset_triggered"
    rows = live.query(
        "SELECT status, model_version, papers_labelled, interval_start FROM labelling_runs "
        "WHERE run_id LIKE %s",
        (f"{RELABEL}/%",),
    )
    assert rows == [("success", version, CURATED, None)]


def test_the_scheduler_catches_up_three_days_each_labelling_its_own_papers(live: Airflow):
    for days_ago in range(1, CATCHUP_DAYS + 1):
        _import(live, live.tmp, 100 + 10 * days_ago, 2, _day(days_ago) + timedelta(hours=12))
    live.set_paused(LABEL, False)

    runs = live.wait_for_runs(LABEL, CATCHUP_DAYS, lambda r: r["run_type"] == "scheduled", 600)

    assert [r["state"] for r in runs] == ["success"] * CATCHUP_DAYS
    rows = live.query(
        "SELECT interval_start, interval_end, papers_labelled FROM labelling_runs "
        "WHERE run_id LIKE %s AND airflow_run_id LIKE 'scheduled%%' ORDER BY interval_start",
        (f"{LABEL}/%",),
    )
    assert [(start.date(), end.date(), n) for start, end, n in rows] == [
        (_day(d).date(), _day(d - 1).date(), 2) for d in range(CATCHUP_DAYS, 0, -1)
    ]


def test_a_manual_run_without_logical_date_labels_every_pending_paper(live: Airflow):
    """Item 2, through the CLI: `airflow dags trigger` without --logical-date."""
    _import(live, live.tmp, 200, 3, datetime(2021, 6, 1, 12))  # in no daily interval
    before = {r["dag_run_id"] for r in live.runs(LABEL)}
    live.cli("dags", "trigger", LABEL)

    [run] = live.wait_for_runs(LABEL, 1, lambda r: r["dag_run_id"] not in before, 300)

    assert run["state"] == "success" and run["logical_date"] is None
    [(labelled, start)] = live.query(
        "SELECT papers_labelled, interval_start FROM labelling_runs WHERE airflow_run_id = %s",
        (run["dag_run_id"],),
    )
    assert (labelled, start) == (3, None)


def test_inference_logs_show_progress_at_info_and_nothing_at_error(live: Airflow):
    """Item 9: no progress bar logged as ERROR; a readable INFO line with papers and rate."""
    run = next(r for r in live.runs(LABEL) if r["run_type"] == "scheduled")
    reply = live.ok(
        "GET",
        f"/api/v2/dags/{LABEL}/dagRuns/{run['dag_run_id']}/taskInstances/infer_local/logs/1",
        params={"full_content": "true"},
    )
    events = [e for e in reply["content"] if isinstance(e, dict)]
    errors = [e for e in events if str(e.get("level", "")).lower() in ("error", "critical")]
    assert errors == [], errors[:3]
    progress = [e["event"] for e in events if "Labelled" in str(e.get("event"))]
    assert progress and re.search(r"2/2 .*papers", progress[-1]), progress


def _backfill(
    live: Airflow, first: datetime, last: datetime, max_active_runs: int, *conf: str
) -> dict:
    before = {b["id"] for b in live.ok("GET", f"/api/v2/backfills?dag_id={LABEL}")["backfills"]}
    live.cli(
        "backfill", "create", "--dag-id", LABEL, "--from-date", f"{first:%Y-%m-%d}",
        "--to-date", f"{last:%Y-%m-%d}", "--reprocess-behavior", "completed",
        "--max-active-runs", str(max_active_runs), *conf,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = live.ok("GET", f"/api/v2/backfills?dag_id={LABEL}")["backfills"]
        [backfill] = [b for b in found if b["id"] not in before]
        if backfill["completed_at"]:
            return backfill
        live.check_alive()
        time.sleep(3)
    raise AssertionError(f"backfill {backfill} did not complete")


def _counts(live: Airflow) -> tuple:
    return live.query(
        "SELECT (SELECT count(*) FROM paper_labelling), (SELECT count(*) FROM paper_labels "
        "WHERE origin = 'model'), (SELECT count(*) FROM labelling_runs)"
    )[0]


@pytest.mark.timeout(900)
def test_a_seven_day_backfill_twice_runs_seven_days_in_turn_and_writes_the_same_rows(
    live: Airflow,
):
    """Item 11: seven runs (days before the schedule's start date too), one at a time
    with --max-active-runs 1 (a backfill's own limit, default 10, not the DAG's
    max_active_runs); the second backfill re-runs them and changes no row."""
    first, last = _day(CATCHUP_DAYS + 7), _day(CATCHUP_DAYS + 1)
    for offset in (0, 3, 6):
        _import(live, live.tmp, 300 + offset, 1, first + timedelta(days=offset, hours=6))

    _backfill(live, first, last, max_active_runs=1)
    runs = [r for r in live.runs(LABEL) if r["run_type"] == "backfill"]
    assert len(runs) == 7 and {r["state"] for r in runs} == {"success"}
    spans = sorted((r["start_date"], r["end_date"]) for r in runs)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
    after_first = _counts(live)

    # The second time side by side (quicker): the labels must come out the same anyway.
    _backfill(live, first, last, max_active_runs=7)
    again = [r for r in live.runs(LABEL) if r["run_type"] == "backfill"]
    assert len(again) == 7 and {r["state"] for r in again} == {"success"}
    labelled_papers, model_labels, run_rows = _counts(live)
    assert (labelled_papers, model_labels) == after_first[:2]
    assert run_rows == after_first[2] + 7  # each re-run has a row of its own ("#1")
    # Every day has its row: the four days with no paper "succeeded doing nothing".
    labelled = live.query(
        "SELECT status, papers_selected, papers_labelled FROM labelling_runs "
        "WHERE airflow_run_id LIKE 'backfill%%' AND run_id NOT LIKE '%%#%%' "
        "ORDER BY interval_start"
    )
    assert labelled == [("success", n, n) for n in (1, 0, 0, 1, 0, 0, 1)]
    rerun = live.query(
        "SELECT status, papers_selected FROM labelling_runs "
        "WHERE airflow_run_id LIKE 'backfill%%' AND run_id LIKE '%%#1'"
    )
    assert rerun == [("success", 0)] * 7


def test_a_backfill_over_manual_runs_leaves_no_paper_of_its_days_unlabelled(live: Airflow):
    """Issue 23 item 1: a manual run dated D, then a backfill of the days around it with
    --reprocess-behavior completed (which re-runs the manual run for day D, keeping its
    stored interval): every paper ingested in the backfilled days has the production
    model's labels or its run failed: a manual dry run the backfill re-ran keeps its conf
    (Airflow's doing), so it fails saying how to label the day, and keeps its own row
    (item 2); backfilling that day with a conf of its own labels it."""
    live.set_paused(LABEL, False)
    first, last = _day(26), _day(20)  # clear of every other test's days
    for offset in (0, 3, 6):
        _import(live, live.tmp, 500 + 10 * offset, 2, first + timedelta(days=offset, hours=6))
    manual = live.ok(
        "POST", f"/api/v2/dags/{LABEL}/dagRuns", json={"logical_date": last.isoformat()}
    )
    dry = live.ok(
        "POST",
        f"/api/v2/dags/{LABEL}/dagRuns",
        json={"logical_date": _day(23).isoformat(), "conf": {"dry_run": True}},
    )
    for run in (manual, dry):
        [done] = live.wait_for_runs(LABEL, 1, lambda r, i=run["dag_run_id"]: r["dag_run_id"] == i)
        assert done["state"] == "success", live.task_instances(LABEL, run["dag_run_id"])
    [(dry_flag, proposed, written)] = live.query(
        "SELECT dry_run, labels_proposed, labels_written FROM labelling_runs "
        "WHERE airflow_run_id = %s",
        (dry["dag_run_id"],),
    )
    assert dry_flag and proposed > 0 and written == 0

    _backfill(live, first, last, max_active_runs=3)

    days = {r["dag_run_id"]: r for r in live.runs(LABEL) if r["run_type"] == "backfill"}
    assert {manual["dag_run_id"], dry["dag_run_id"]} <= set(days)  # Airflow re-ran both
    assert days[manual["dag_run_id"]]["state"] == "success"
    # The dry run keeps its conf when a backfill re-runs it: it fails, saying so, rather
    # than "succeed" leaving its day unlabelled.
    assert days[dry["dag_run_id"]]["state"] == "failed"
    tis = live.task_instances(LABEL, dry["dag_run_id"])
    assert tis["stage"]["state"] == "failed", tis
    [(status, error)] = live.query(
        "SELECT status, error FROM labelling_runs WHERE run_id = %s",
        (f"{LABEL}/{dry['dag_run_id']}#1",),
    )
    assert status == "failed" and "--dag-run-conf '{}'" in error, error
    deadline = time.monotonic() + 90  # its one alert (the DAG's callback) goes out too
    subjects = lambda: [  # noqa: E731
        re.sub(r"\s+", " ", email.message_from_bytes(m.content)["Subject"] or "")
        for m in live.smtp.messages
    ]
    while not [s for s in subjects() if dry["dag_run_id"] in s]:
        assert time.monotonic() < deadline, "no alert for the failed re-run"
        time.sleep(2)
    [(version,)] = live.query("SELECT version FROM model_versions WHERE is_production")

    def unlabelled() -> list[tuple]:
        return live.query(
            "SELECT p.ingested_at FROM papers p WHERE p.ingested_at >= %s "
            "AND p.ingested_at < %s AND NOT EXISTS (SELECT 1 FROM paper_labelling l "
            "WHERE l.paper_id = p.id AND l.model_version = %s)",
            (first, last + timedelta(days=1), version),
        )

    # Only the failed run's day is left, and that failure is on the page.
    assert {at.date() for (at,) in unlabelled()} == {_day(23).date()}

    # As the error says: that day again with a conf of its own labels it.
    _backfill(live, _day(23), _day(23), 1, "--dag-run-conf", "{}")
    assert unlabelled() == []
    rows = live.query(
        "SELECT run_id, dry_run, status, interval_start FROM labelling_runs "
        "WHERE airflow_run_id = %s ORDER BY started_at",
        (dry["dag_run_id"],),
    )
    assert [row[1:] for row in rows] == [
        (True, "success", _day(23)),
        (False, "failed", _day(23)),
        (False, "success", _day(23)),
    ]
    assert [row[0] for row in rows[1:]] == [rows[0][0] + "#1", rows[0][0] + "#2"]


def test_manual_runs_dated_before_the_schedule_start_run_their_tasks(live: Airflow):
    """Item 3: a run dated before PETAL_START_DATE is not an empty "success": through the
    REST API it labels its own day; through the CLI (as docs/airflow.md triggers) it runs
    every task too, with the interval Airflow's CLI gives it."""
    live.set_paused(LABEL, False)
    day = _day(CATCHUP_DAYS + 12)  # well before the schedule's start (and the backfill)
    _import(live, live.tmp, 400, 2, day + timedelta(hours=6))
    via_rest = live.ok(
        "POST", f"/api/v2/dags/{LABEL}/dagRuns", json={"logical_date": day.isoformat()}
    )
    before = {r["dag_run_id"] for r in live.runs(LABEL)}
    cli_date = f"{_day(CATCHUP_DAYS + 13):%Y-%m-%dT%H:%M:%S+00:00}"
    live.cli("dags", "trigger", LABEL, "--logical-date", cli_date)
    [via_cli] = [r for r in live.runs(LABEL) if r["dag_run_id"] not in before]

    for run in (via_rest, via_cli):
        [done] = live.wait_for_runs(LABEL, 1, lambda r, i=run["dag_run_id"]: r["dag_run_id"] == i)
        tis = live.task_instances(LABEL, done["dag_run_id"])
        assert done["state"] == "success" and tis["stage"]["state"] == "success", tis
        assert {"check_config", "stage", "cleanup"} <= set(tis)
    rows = {
        run_id: (start, labelled)
        for run_id, start, labelled in live.query(
            "SELECT airflow_run_id, interval_start, papers_labelled FROM labelling_runs "
            "WHERE airflow_run_id IN (%s, %s)",
            (via_rest["dag_run_id"], via_cli["dag_run_id"]),
        )
    }
    # Each labels the day of its logical date, as the scheduled run of that date would
    # (the CLI stores an interval from the trigger time: it is not what labels).
    assert rows[via_rest["dag_run_id"]] == (day, 2)
    assert rows[via_cli["dag_run_id"]] == (_day(CATCHUP_DAYS + 13), 0)


def test_a_misconfigured_sagemaker_run_fails_at_once_with_one_alert(live: Airflow):
    """Item 7: no bucket, image, role or region: check_config fails on its first try,
    nothing else fails (cleanup has nothing to clean), one e-mail names what is missing."""
    mails = len(live.smtp.messages)
    run = live.ok(
        "POST",
        f"/api/v2/dags/{LABEL}/dagRuns",
        json={"logical_date": None, "conf": {"backend": "sagemaker"}},
    )
    [done] = live.wait_for_runs(LABEL, 1, lambda r: r["dag_run_id"] == run["dag_run_id"], 300)

    assert done["state"] == "failed"
    tis = live.task_instances(LABEL, run["dag_run_id"])
    assert (tis["check_config"]["state"], tis["check_config"]["try_number"]) == ("failed", 1)
    assert [t for t, ti in tis.items() if ti["state"] == "failed"] == ["check_config"]
    # Nothing was staged, so the teardown does not run, as docs/airflow.md says (item 5).
    assert tis["cleanup"]["state"] == "upstream_failed", tis["cleanup"]
    deadline = time.monotonic() + 60
    while len(live.smtp.messages) == mails and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)  # a second alert would come from another task's callback by now
    new = live.smtp.messages[mails:]
    assert len(new) == 1, [m.content[:200] for m in new]
    mail = email.message_from_bytes(new[0].content)
    body = "".join(
        part.get_payload(decode=True).decode("utf-8", "replace")
        for part in mail.walk()
        if not part.is_multipart()
    )
    assert "check_config" in mail["Subject"]
    assert "petal_s3_bucket" in body and "no AWS region" in body


def test_petal_model_promote_sends_the_asset_event_and_relabels(live: Airflow):
    """Item 4: the CLI writes the same records and the same Asset event as the DAG."""
    version, artefact = _production(live)
    relabels = len(live.runs(RELABEL))

    out = live.petal("model", "register", artefact, "--version", "v-cli", "--promote").stdout

    assert "promoted v-cli" in out and "Asset event" in out and "sent" in out
    live.wait_for_runs(RELABEL, relabels + 1, timeout=300)
    [(labelled,)] = live.query("SELECT count(*) FROM paper_labelling WHERE model_version = 'v-cli'")
    [(papers,)] = live.query("SELECT count(*) FROM papers")
    assert labelled == papers
    events = live.ok("GET", "/api/v2/assets/events?limit=50")["asset_events"]
    extras = [e["extra"] or {} for e in events if e["uri"] == "petal://models/production"]
    assert version in {extra.get("version") for extra in extras}  # the DAG's promotion
    assert any(e.get("version") == "v-cli" and e.get("previous") == version for e in extras)
    # Issue 23 item 11: the same artefact, the same numbers (the DAG's held-out scores).
    metrics = dict(live.query("SELECT version, metrics FROM model_versions"))
    assert metrics["v-cli"] == metrics[version] and metrics[version]["micro_F1"] > 0


def test_the_petal_page_for_a_viewer_shows_runs_and_no_server_paths(live: Airflow):
    """Items 8 and 10."""
    reply = live.api("GET", "/petal/api/summary", user=VIEWER)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    text = json.dumps(data)
    assert str(live.home) not in text and ".venv" not in text and "/tmp/" not in text
    failed = [r for r in data["runs"] if r["status"] == "failed"]
    succeeded = [r for r in data["runs"] if r["status"] == "success"]
    assert succeeded and all(r["duration_s"] is not None for r in succeeded)
    assert all(r["airflow_link"].startswith("dags/") for r in data["runs"])
    page = live.api("GET", "/petal/", user=VIEWER).text
    assert "None" not in page and str(live.home) not in page
    assert "success (nothing to label)" in page  # the backfill's empty days
    assert failed == [] or all(r["error"] for r in failed)


def test_every_command_in_docs_airflow_md_works_as_written(
    live: Airflow, tmp_path: Path, request: pytest.FixtureRequest
):
    """Each command block of docs/airflow.md, verbatim, in a checkout-like folder with the
    live services' settings (`airflow standalone` itself is what these services are)."""
    repo = Path(__file__).resolve().parents[2]
    work = tmp_path / "checkout"
    work.mkdir()
    for name in (".venv", "dags", "plugins"):
        (work / name).symlink_to(repo / name)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "petal").symlink_to(SHARED_DATA_DIR)
    (work / ".petal" / "my-model").mkdir(parents=True)
    # The model trained earlier in the session, else (this test alone) the tiny one.
    production = _production(live)
    artefact = production[1] if production else request.getfixturevalue("tiny_model_tar")
    shutil.copyfile(artefact, work / ".petal" / "my-model" / "model.tar.gz")
    blocks = doc_blocks(repo / "docs" / "airflow.md")
    # The laptop block ends in `airflow standalone`: keep its settings, not the server.
    setup = next(b for b in blocks if "airflow standalone" in b)
    exports = "\n".join(
        line for line in setup.splitlines()
        if line.startswith("export ") and "AIRFLOW_HOME" not in line
    )  # fmt: skip
    # Without PETAL_AIRFLOW_URL a promotion says so instead of sending an event.
    env = {k: v for k, v in live.env.items() if not k.startswith("PETAL_AIRFLOW_")}
    request.addfinalizer(partial(live.restore_settings, live.settings()))
    ran = 0
    for block in blocks:
        if block is setup:
            continue
        script = f"set -euo pipefail\n. .venv/bin/activate\n{exports}\n{block}\n"
        result = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, f"{block}\n---\n{result.stdout}\n{result.stderr}"
        ran += 1
    assert ran >= 8
    # The docs' trigger (a dry run yesterday) ran real tasks, not an empty "success".
    manual = [r for r in live.runs(LABEL) if r["run_type"] == "manual" and r["logical_date"]]
    [done] = live.wait_for_runs(
        LABEL, 1, lambda r: r["dag_run_id"] == manual[-1]["dag_run_id"], 300
    )
    tis = live.task_instances(LABEL, done["dag_run_id"])
    assert done["state"] == "success" and tis["stage"]["state"] == "success"
    # The docs' backfill goes on after its command returns; from the SageMaker block on
    # its days run on the sagemaker backend with the docs' placeholder account, which
    # has no credentials here: each fails at check_config at once (not after retries).
    deadline = time.monotonic() + 300
    while active := [r for r in live.runs(LABEL) if r["state"] in ("queued", "running")]:
        assert time.monotonic() < deadline, active
        time.sleep(3)
    backfilled = [r for r in live.runs(LABEL) if r["run_type"] == "backfill"]
    for run in backfilled:
        tis = live.task_instances(LABEL, run["dag_run_id"])
        # At once: a retry would wait retry_delay first. Not try_number == 1: a backfill
        # that re-runs an existing scheduled run clears its tasks, which counts a try.
        if run["state"] == "failed":
            assert [t for t, ti in tis.items() if ti["state"] == "failed"] == ["check_config"]
            took = datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(
                run["start_date"]
            )
            assert took < default_args()["retry_delay"], (run, took)
