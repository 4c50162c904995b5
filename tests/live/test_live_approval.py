"""The training DAG's approval in a live Airflow (api-server, scheduler, dag-processor; no
triggerer): the approve task waits in `awaiting_input` and is answered through the REST
API, as the UI's Required Actions page answers it."""

from __future__ import annotations

import time

import pytest

from petal_labeller.config import SHARED_DATA_DIR
from tests.fixtures.airflow import TINY_TRAINING
from tests.live.conftest import ADMIN, Airflow

pytestmark = pytest.mark.slow

TRAIN, RELABEL = "petal_train_model", "petal_relabel_papers"
CURATED = 60


@pytest.fixture(scope="module")
def live(airflow_services: Airflow, tmp_path_factory) -> Airflow:
    """The taxonomy and curator-labelled papers (a re-import changes nothing)."""
    tmp = tmp_path_factory.mktemp("approval-data")
    airflow_services.petal("taxonomy", "load", str(SHARED_DATA_DIR / "taxonomy.json"))
    lines = (SHARED_DATA_DIR / "labelled_papers.jsonl").read_text(encoding="utf-8").splitlines()
    curated = tmp / "curated.jsonl"
    curated.write_text("\n".join(lines[:CURATED]) + "\n", encoding="utf-8")
    airflow_services.petal("papers", "import", str(curated), "--ingested-at", "2020-01-01")
    airflow_services.set_paused(TRAIN, False)
    return airflow_services


def _trigger(live: Airflow, version: str, **conf) -> str:
    # backend local: whatever Variable an earlier test left (the docs' SageMaker block);
    # max_papers: the store holds every shared paper once the docs test has imported them,
    # and a training run over all of them takes minutes, not seconds.
    conf = {
        "model_version": version, "backend": "local", "train_options": TINY_TRAINING,
        "max_papers": CURATED, **conf,
    }  # fmt: skip
    run = live.ok("POST", f"/api/v2/dags/{TRAIN}/dagRuns", json={"logical_date": None,
                                                                  "conf": conf})  # fmt: skip
    return run["dag_run_id"]


def _await_input(live: Airflow, run_id: str, timeout: float = 600) -> dict:
    """The approve task once it waits for a person (the run must not finish first)."""
    deadline = time.monotonic() + timeout
    while True:
        tis = live.task_instances(TRAIN, run_id)
        approve = tis.get("approve", {})
        if approve.get("state") == "awaiting_input":
            return approve
        run = live.ok("GET", f"/api/v2/dags/{TRAIN}/dagRuns/{run_id}")
        assert run["state"] not in ("success", "failed"), {k: v["state"] for k, v in tis.items()}
        assert time.monotonic() < deadline, {k: v["state"] for k, v in tis.items()}
        live.check_alive()
        time.sleep(2)


def _asking_process_ended(live: Airflow, run_id: str, timeout: float = 120) -> None:
    """Wait until the scheduler logged the exit of the process that asked (its executor
    event for the approve task's current try), then a moment more."""
    try_number = live.task_instances(TRAIN, run_id)["approve"]["try_number"]
    event = f"task_id='approve', run_id='{run_id}', try_number={try_number},"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with live.logs["scheduler"].open(errors="replace") as log:
            if any("Received executor event" in line and event in line for line in log):
                break
        live.check_alive()
        time.sleep(1)
    else:
        raise AssertionError(f"the scheduler never saw approve try {try_number} end: {event}")
    time.sleep(1)


def _answer(live: Airflow, run_id: str, option: str, comment: str) -> dict:
    """Answer the approve task's request as a person would: a moment after it appears.

    Airflow 3.3 loses an answer that lands before the process that asked has ended (seen
    here: the task resumed while that process was still ending, the scheduler then took
    the old process's exit for the new try's and failed it; on a loaded machine the
    process took 5 s to end). A person cannot answer that fast; a script can. So the
    answer waits until the scheduler has seen the asking process end, and a fresh
    unanswered request is answered again.
    """
    path = f"/api/v2/dags/{TRAIN}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
    answer = {"chosen_options": [option], "params_input": {"comment": comment}}
    detail = live.ok("GET", path)
    for _ in range(3):
        _asking_process_ended(live, run_id)
        live.ok("PATCH", path, json=answer)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = live.task_instances(TRAIN, run_id)["approve"]["state"]
            if state in ("success", "failed", "skipped"):
                return detail
            if state == "awaiting_input" and not live.ok("GET", path)["response_received"]:
                break  # asked again: answer again
            live.check_alive()
            time.sleep(2)
        else:
            return detail
        time.sleep(3)
    return detail


def _finished(live: Airflow, run_id: str) -> dict:
    [run] = live.wait_for_runs(TRAIN, 1, lambda r: r["dag_run_id"] == run_id, 600)
    return run


def _production_events(live: Airflow) -> list[str | None]:
    """The versions the petal_production_model Asset events announced, oldest first."""
    events = live.ok("GET", "/api/v2/assets/events?limit=100")["asset_events"]
    uri = "petal://models/production"
    return [(e["extra"] or {}).get("version") for e in events if e["uri"] == uri]


def _row(live: Airflow, version: str) -> tuple:
    [row] = live.query(
        "SELECT is_production, decision, decided_by, decision_comment, comparison IS NOT NULL "
        "FROM model_versions WHERE version = %s",
        (version,),
    )
    return row


def test_an_approval_waits_without_a_triggerer_and_its_answer_decides(live: Airflow):
    assert "triggerer" not in live.processes
    relabels_before = len(live.runs(RELABEL))
    # `required`: a person is asked even about a first model; approving promotes it.
    first = _trigger(live, "live-base", approval="required")
    _await_input(live, first)
    _answer(live, first, "Approve", "baseline")
    assert _finished(live, first)["state"] == "success"
    assert _row(live, "live-base")[:4] == (True, "approved", ADMIN, "baseline")
    # The promotion's Asset event starts one relabelling run.
    live.wait_for_runs(RELABEL, relabels_before + 1, timeout=300)
    events = _production_events(live)
    assert "live-base" in events

    # The same data and recipe as production: the gate cannot tell them apart, so it asks.
    same = _trigger(live, "live-same")
    waiting = _await_input(live, same)
    assert waiting["state"] == "awaiting_input"
    detail = _answer(live, same, "Reject", "no real gain")
    assert "may be noise" in detail["body"] and "95% interval" in detail["body"]
    assert detail["options"] == ["Approve", "Reject"]
    run = _finished(live, same)
    states = {k: v["state"] for k, v in live.task_instances(TRAIN, same).items()}
    assert run["state"] == "success", states
    assert (states["approve"], states["promote"], states["record_decision"]) == (
        "success", "skipped", "success",
    )  # fmt: skip
    assert _row(live, "live-same") == (False, "rejected", ADMIN, "no real gain", True)
    assert _row(live, "live-base")[0] is True  # production stays
    assert _production_events(live) == events  # no Asset event: no relabelling
    assert len(live.runs(RELABEL)) == relabels_before + 1


def test_an_unanswered_approval_times_out_in_the_scheduler_and_keeps_production(
    live: Airflow,
):
    """The scheduler's awaiting-input sweep answers the default (Reject) at the deadline."""
    production = live.query("SELECT version FROM model_versions WHERE is_production")
    events = _production_events(live)
    run_id = _trigger(live, "live-late", approval="required", approval_timeout_hours=0.005)  # 18 s
    _await_input(live, run_id)
    run = _finished(live, run_id)
    states = {k: v["state"] for k, v in live.task_instances(TRAIN, run_id).items()}
    assert run["state"] == "success", states
    assert (states["approve"], states["promote"]) == ("success", "skipped")
    assert _row(live, "live-late")[:4] == (False, "timed_out", None, None)
    assert live.query("SELECT version FROM model_versions WHERE is_production") == production
    assert _production_events(live) == events
