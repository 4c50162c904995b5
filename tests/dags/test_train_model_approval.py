"""`petal_train_model`'s gate and approval under `dag.test()`: a retrain on the same data
as production is not clearly better, so the run asks a person (the task waits in
`awaiting_input`); the answer comes through Airflow's REST API (the real API app,
in-process) or, unanswered, from the scheduler's own awaiting-input timeout sweep."""

from __future__ import annotations

import email
import threading
import time
from contextlib import closing
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from petal_labeller.store.connection import connect
from tests.fixtures.airflow import TEST_PASSWORD, TEST_USER, TINY_TRAINING, load_dag

pytestmark = pytest.mark.slow
DAG_ID = "petal_train_model"


def _waiting_approval():
    """(run id, response deadline) of the approve task waiting in awaiting_input, or None."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(
            select(TI.run_id, TI.trigger_timeout).where(
                TI.dag_id == DAG_ID,
                TI.task_id == "approve",
                TI.state == TaskInstanceState.AWAITING_INPUT,
            )
        ).first()
    return tuple(row) if row else None


class Approver(threading.Thread):
    """Answers the approval once it waits: `answer` through the REST API, or (None) lets
    the deadline pass and runs the scheduler's timeout sweep, as a scheduler would."""

    def __init__(self, answer: str | None, comment: str = ""):
        super().__init__(daemon=True)
        self.answer, self.comment = answer, comment
        self.detail: dict | None = None
        self.status: int | None = None

    def run(self) -> None:
        give_up = time.monotonic() + 1200  # only so a broken run cannot leave a thread behind
        while (waiting := _waiting_approval()) is None:
            if time.monotonic() > give_up:
                return
            time.sleep(0.5)
        run_id, deadline = waiting
        if self.answer is None:
            self._time_out(deadline)
        else:
            self._respond(run_id)

    def _respond(self, run_id: str) -> None:
        from airflow.api_fastapi.app import create_app
        from fastapi.testclient import TestClient

        client = TestClient(create_app())
        token = client.post(
            "/auth/token", json={"username": TEST_USER, "password": TEST_PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        run = quote(run_id, safe="")
        url = f"/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances/approve/-1/hitlDetails"
        self.detail = client.get(url, headers=headers).json()
        response = client.patch(
            url,
            headers=headers,
            json={"chosen_options": [self.answer], "params_input": {"comment": self.comment}},
        )
        self.status = response.status_code

    def _time_out(self, deadline: datetime) -> None:
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

        while datetime.now(UTC) <= deadline:
            time.sleep(0.2)
        SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()
        self.status = 0


def _train(version: str, approver: Approver | None = None, **conf):
    if approver:
        approver.start()
    run = load_dag(DAG_ID).test(
        logical_date=datetime(2026, 11, 8, tzinfo=UTC),
        run_conf={"model_version": version, "train_options": TINY_TRAINING, **conf},
    )
    if approver:
        approver.join(timeout=60)
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def _versions(url):
    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT version, is_production, decision, decided_by, decision_comment, "
            "comparison IS NOT NULL FROM model_versions ORDER BY created_at, version"
        )
        return cur.fetchall()


def test_a_retrain_on_the_same_data_waits_for_a_person_who_decides(
    airflow_db, curated_database, petal_home, smtp_server
):
    url = curated_database
    first, states = _train("base")
    assert first.state == "success", states
    assert (states["auto_promote"], states["approve"], states["promote"]) == (
        "success", "skipped", "success",
    )  # fmt: skip
    assert _versions(url) == [("base", True, "first", None, None, False)]

    approver = Approver("Approve", "same numbers, fine by me")
    approved, states = _train("same-1", approver)
    assert approved.state == "success", states
    assert approver.status == 200
    assert (states["auto_promote"], states["approve"], states["promote"]) == (
        "skipped", "success", "success",
    )  # fmt: skip
    body = approver.detail["body"]
    assert "| micro_F1 |" in body and "95% interval" in body and "| nDCG@3 |" in body
    assert "held-out papers:" in body and "change label set" in body
    assert "curated papers, of which 0 reviewed" in body and "/tasks/quality_gate/xcom" in body
    assert "may be noise" in body
    # PETAL_ALERT_TO heard that a decision was waiting, with the Required Actions link.
    (waiting,) = smtp_server
    message = email.message_from_bytes(waiting.original_content)
    assert message["Subject"] == "[PeTaL] decision waiting: promote model same-1 to production?"
    assert (
        "/tasks/approve/required_actions"
        in message.get_payload()[0].get_payload(decode=True).decode()
    )
    assert _versions(url)[-1] == ("same-1", True, "approved", TEST_USER,
                                  "same numbers, fine by me", True)  # fmt: skip

    rejected, states = _train("same-2", Approver("Reject", "no gain"))
    assert rejected.state == "success", states
    assert (states["approve"], states["promote"], states["record_decision"]) == (
        "success", "skipped", "success",
    )  # fmt: skip
    assert _versions(url)[-1] == ("same-2", False, "rejected", TEST_USER, "no gain", True)
    assert [v[0] for v in _versions(url) if v[1]] == ["same-1"]  # production stays

    timed_out, states = _train("same-3", Approver(None), approval_timeout_hours=0.0005)
    assert timed_out.state == "success", states
    assert states["promote"] == "skipped"
    assert _versions(url)[-1] == ("same-3", False, "timed_out", None, None, True)
    assert len(smtp_server) == 3, "one decision-waiting e-mail per run that asked"
    assert [v[0] for v in _versions(url) if v[1]] == ["same-1"]
    assert not any((petal_home / "runs").rglob("*.jsonl")), "workspace must be cleaned up"

    # A candidate nobody approved is kept, so it can still be promoted by hand.
    from petal_labeller.pipeline.promotion import promote_version

    assert (petal_home / "models" / "same-3" / "model.tar.gz").is_file()
    promote_version("same-3", url)
    assert [v[0] for v in _versions(url) if v[1]] == ["same-3"]
    # And a rejected one too, with the command an operator types.
    from click.testing import CliRunner

    from petal_labeller.cli import main

    assert (petal_home / "models" / "same-2" / "model.tar.gz").is_file()
    result = CliRunner().invoke(main, ["--database-url", url, "model", "promote", "same-2"])
    assert result.exit_code == 0, result.output
    assert "promoted same-2 (was same-3)" in result.output
    assert [v[0] for v in _versions(url) if v[1]] == ["same-2"]
    assert _versions(url)[-2][2:5] == ("rejected", TEST_USER, "no gain"), "the record stays"


def test_approval_never_keeps_production_without_asking_and_required_always_asks(
    airflow_db, curated_database, petal_home
):
    url = curated_database
    required = Approver("Approve", "first model, checked")
    run, states = _train("first", required, approval="required")
    assert run.state == "success", states
    assert states["approve"] == "success" and states["promote"] == "success"
    assert _versions(url) == [("first", True, "approved", TEST_USER, "first model, checked",
                               False)]  # fmt: skip

    never, states = _train("same-never", approval="never")
    assert never.state == "success", states
    assert (states["approve"], states["promote"], states["keep_production"]) == (
        "skipped", "skipped", "success",
    )  # fmt: skip
    assert [v[0] for v in _versions(url)] == ["first"]  # nothing recorded for a kept run
