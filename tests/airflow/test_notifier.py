"""A failed PeTaL run sends a real e-mail through the `petal_smtp` connection."""

from __future__ import annotations

import email
from datetime import UTC, datetime

import pytest

from petal_labeller.airflow.notifier import alert_recipients, failure_notifier
from tests.fixtures.airflow import load_dag


def test_notifier_takes_its_server_from_the_connection_and_names_the_run():
    notifier = failure_notifier()
    assert notifier.smtp_conn_id == "petal_smtp"
    assert notifier.to == alert_recipients()
    assert "{{ dag.dag_id }}" in notifier.subject and "{{ run_id }}" in notifier.subject


def test_recipients_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PETAL_ALERT_TO", "a@example.org, b@example.org")
    assert alert_recipients() == ["a@example.org", "b@example.org"]


@pytest.mark.slow
def test_failing_labelling_run_emails_the_alert_address(
    airflow_db, migrated_database_url, petal_home, smtp_server
):
    # No model is registered: the stage task fails with a clear error, at once
    # (AirflowFailException: no retry can register a model).
    dag = load_dag("petal_label_papers", retries=2)
    run = dag.test(logical_date=datetime(2026, 11, 3, tzinfo=UTC))

    assert run.state == "failed"
    (stage,) = [ti for ti in run.get_task_instances() if ti.task_id == "stage"]
    assert (stage.state, stage.try_number) == ("failed", 1)
    assert len(smtp_server) == 1
    envelope = smtp_server[0]
    assert envelope.mail_from == "airflow@petal.test"
    assert envelope.rcpt_tos == alert_recipients()
    message = email.message_from_bytes(envelope.original_content)
    assert message["Subject"] == f"[PeTaL] petal_label_papers failed: stage in {run.run_id}"
    body = message.get_payload()[0].get_payload(decode=True).decode()
    assert "no production model is registered" in body
