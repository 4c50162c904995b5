"""Which way the gate sends a run, and what the approver reads."""

from __future__ import annotations

import numpy as np
import pytest

from petal_labeller.airflow.training.approval import (
    APPROVE,
    KEEP,
    PROMOTE,
    approval_body,
    card_link,
    route,
)
from petal_labeller.model.compare import Churn, Outputs, compare
from petal_labeller.pipeline.training import quality_gate


@pytest.mark.parametrize(
    ("promote", "ask", "mode", "first", "dry_run", "expected"),
    [
        (True, False, "auto", False, False, PROMOTE),
        (False, True, "auto", False, False, APPROVE),
        (False, False, "auto", False, False, KEEP),  # clearly worse: nobody is asked
        (True, False, "required", False, False, APPROVE),
        (True, False, "required", True, False, APPROVE),  # even a first model
        (True, False, "never", False, False, PROMOTE),
        (False, True, "never", False, False, KEEP),
        (True, False, "auto", True, False, PROMOTE),  # a first model has nothing to beat
        (True, False, "auto", False, True, KEEP),  # a dry run promotes nothing
        (False, True, "required", False, True, KEEP),
    ],
)
def test_route(promote, ask, mode, first, dry_run, expected):
    assert route(promote, ask, mode, first, dry_run) == expected


def test_the_body_shows_both_models_intervals_churn_data_and_the_card():
    rng = np.random.default_rng(0)
    gold = (rng.random((40, 12)) < 0.2).astype(np.float32)
    scores = rng.random(gold.shape).astype(np.float32)
    old = Outputs(scores, (scores > 0.8).astype(np.float32))
    new = Outputs(scores, (scores > 0.75).astype(np.float32))
    store = Churn(papers=200, changed=31, labels_added=40, labels_removed=5, sample=True,
                  population=5000)  # fmt: skip
    comparison = compare(new, old, gold, resamples=300).with_store_churn(store)
    decision = quality_gate({"micro_F1": 0}, {"micro_F1": 0}, comparison=comparison)
    gate = {"reason": decision.reason, "comparison": comparison.as_dict()}
    evaluated = {"version": "v2", "production_version": "v1", "candidate": {},
                 "train_papers": 820, "reviewed_papers": 12, "heldout_papers": 40}  # fmt: skip
    card = {"recipe": "stack", "base_model": "all-MiniLM-L6-v2", "preset": "default",
            "created": "2026-12-01T10:00:00+00:00"}  # fmt: skip
    link = card_link("http://airflow:8080/", "petal_train_model", "manual__2026-12-01", "qg")
    body = approval_body(evaluated, gate, link, card)

    micro = comparison.gains["micro_F1"]
    assert f"| micro_F1 | {micro.candidate:.4f} | {micro.production:.4f} |" in body
    assert f"{micro.low:+.4f} to {micro.high:+.4f}" in body
    assert all(f"| {name} |" in body for name in ("P@1", "P@3", "nDCG@3"))
    changed = comparison.heldout_churn.changed
    assert f"held-out papers: {changed} of 40 papers change label set" in body
    assert "31 of 200 papers change label set (15.5%, a sample of 5000 papers)" in body
    assert "820 curated papers, of which 12 reviewed by curators; 40 held out" in body
    assert (
        "(http://airflow:8080/dags/petal_train_model/runs/manual__2026-12-01/tasks/qg/xcom)" in body
    )
    assert decision.reason in body and "`v2`** vs production `v1`" in body


class _TI:
    task_id = "approve"

    def xcom_pull(self, task_ids: str, key: str = "return_value"):
        return {
            ("evaluate", "return_value"): {"version": "v7", "production_version": "v6"},
            ("quality_gate", "gate"): {"reason": "gain +0.0010 may be noise <b>"},
        }.get((task_ids, key))


class _DagRun:
    dag_id, run_id = "petal_train_model", "manual__2026-12-01T00:00:00+00:00"


def _context() -> dict:
    return {"ti": _TI(), "dag_run": _DagRun(), "params": {"approval_timeout_hours": 72.0}}


def test_the_required_actions_link_keeps_the_base_path_and_quotes_the_run():
    from petal_labeller.airflow.training.approval import required_actions_link

    link = required_actions_link(
        "https://airflow.example.org/team/", "petal_train_model",
        "manual__2026-12-01T00:00:00+00:00", "approve",
    )  # fmt: skip
    assert link == (
        "https://airflow.example.org/team/dags/petal_train_model/runs/"
        "manual__2026-12-01T00%3A00%3A00%2B00%3A00/tasks/approve/required_actions"
    )


def test_a_waiting_decision_is_one_email_to_petal_alert_to_with_the_link(smtp_server, monkeypatch):
    import email

    from petal_labeller.airflow.notifier import alert_recipients
    from petal_labeller.airflow.training.approval import DecisionWaiting

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.org/team")
    DecisionWaiting().notify(_context())

    (envelope,) = smtp_server
    assert envelope.rcpt_tos == alert_recipients()
    message = email.message_from_bytes(envelope.original_content)
    assert message["Subject"] == "[PeTaL] decision waiting: promote model v7 to production?"
    body = message.get_payload()[0].get_payload(decode=True).decode()
    assert (
        "https://airflow.example.org/team/dags/petal_train_model/runs/"
        "manual__2026-12-01T00%3A00%3A00%2B00%3A00/tasks/approve/required_actions"
    ) in body
    assert "v6" in body and "may be noise &lt;b&gt;" in body and "72 hours" in body


def test_a_lost_waiting_email_is_an_error_not_a_failed_approval(monkeypatch, caplog):
    import json
    import logging

    from petal_labeller.airflow.training.approval import DecisionWaiting
    from tests.fixtures.airflow import free_port, smtp_connection

    connection = json.loads(smtp_connection(free_port()))  # nothing listens there
    connection["password"] = "smtp-secret-123"
    monkeypatch.setenv("AIRFLOW_CONN_PETAL_SMTP", json.dumps(connection))
    with caplog.at_level(logging.ERROR, logger="petal_labeller.airflow.training.approval"):
        DecisionWaiting().notify(_context())  # does not raise
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "NOT sent" in record.getMessage() and "smtp-secret-123" not in caplog.text
