"""A failed PeTaL run sends one real e-mail through the `petal_smtp` connection, with
its interval, conf and a link; a lost e-mail is an ERROR and a mark on the run's row."""

from __future__ import annotations

import email
import json
import logging
from datetime import UTC, datetime

import pytest

from petal_labeller.airflow.failures import data_window
from petal_labeller.airflow.notifier import (
    Alert,
    alert_body,
    alert_recipients,
    alert_subject,
    run_link,
    send_alert,
)
from tests.fixtures.airflow import free_port, load_dag, smtp_connection

START, END = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
ALERT = Alert(
    "petal_label_papers",
    "manual__2026-11-03T00:00:00+00:00",
    ("check_config",),
    "check_config: no Variable petal_s3_bucket; {{ not a template }} <b>",
    START,
    END,
    {"backend": "sagemaker", "db_password": "hunter2"},
    "https://airflow.example.org/team/",
)


def test_recipients_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PETAL_ALERT_TO", "a@example.org, b@example.org")
    assert alert_recipients() == ["a@example.org", "b@example.org"]


def test_the_alert_names_tasks_error_interval_conf_and_links_from_the_base_url():
    body = alert_body(ALERT)
    assert alert_subject(ALERT) == (
        "[PeTaL] petal_label_papers failed: check_config in manual__2026-11-03T00:00:00+00:00"
    )
    link = "https://airflow.example.org/team/dags/petal_label_papers/runs/manual__2026-11-03T00%3A00%3A00%2B00%3A00"
    assert run_link(ALERT) == link
    assert f'href="{link}"' in body and f'href="{link}/tasks/check_config"' in body
    assert "{{ not a template }} &lt;b&gt;" in body  # text, escaped, never rendered
    assert "2026-11-02T00:00:00+00:00 to 2026-11-03T00:00:00+00:00" in body
    assert "&quot;backend&quot;: &quot;sagemaker&quot;" in body
    assert "hunter2" not in body  # a password in the conf is masked


def test_a_run_without_a_real_window_has_no_interval():
    assert data_window({"data_interval_start": START, "data_interval_end": END}) == (START, END)
    assert data_window({"data_interval_start": END, "data_interval_end": END}) == (None, None)
    assert data_window({}) == (None, None)


def test_an_alert_that_cannot_be_sent_is_an_error_with_its_reason(monkeypatch, caplog):
    connection = json.loads(smtp_connection(free_port()))  # nothing listens there
    connection["password"] = "smtp-secret-123"
    connection["login"] = "airflow"
    monkeypatch.setenv("AIRFLOW_CONN_PETAL_SMTP", json.dumps(connection))

    with caplog.at_level(logging.ERROR, logger="petal_labeller.airflow.notifier"):
        reason = send_alert(ALERT)

    assert reason and "Connection refused" in reason, reason
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "NOT sent" in record.getMessage() and "smtp-secret-123" not in caplog.text


def _body(envelope) -> str:
    message = email.message_from_bytes(envelope.original_content)
    return message.get_payload()[0].get_payload(decode=True).decode()


@pytest.mark.slow
def test_failing_labelling_run_emails_once_and_marks_the_alert_sent(
    airflow_db, migrated_database_url, petal_home, smtp_server
):
    from petal_labeller.store.connection import connect
    from petal_labeller.store.runs import list_runs

    # No model is registered: the stage task fails with a clear error, at once
    # (AirflowFailException: no retry can register a model).
    dag = load_dag("petal_label_papers", retries=2)
    run = dag.test(logical_date=datetime(2026, 11, 3, tzinfo=UTC), run_conf={"max_papers": 5})

    assert run.state == "failed"
    (stage,) = [ti for ti in run.get_task_instances() if ti.task_id == "stage"]
    assert (stage.state, stage.try_number) == ("failed", 1)
    assert len(smtp_server) == 1
    envelope = smtp_server[0]
    assert envelope.mail_from == "airflow@petal.test"
    assert envelope.rcpt_tos == alert_recipients()
    message = email.message_from_bytes(envelope.original_content)
    assert message["Subject"] == f"[PeTaL] petal_label_papers failed: stage in {run.run_id}"
    body = _body(envelope)
    assert "no production model is registered" in body
    assert "&quot;max_papers&quot;: 5" in body
    with connect(migrated_database_url) as conn:
        [row] = list_runs(conn)
    assert (row.status, row.alert_status, row.alert_error) == ("failed", "sent", None)
    assert "no production model is registered" in row.error
    # The window the run labels (its row's), not just whatever Airflow stored.
    assert f"{row.interval_start.isoformat()} to {row.interval_end.isoformat()}" in body


@pytest.mark.slow
def test_a_run_failing_before_stage_gets_its_row_and_a_lost_alert_is_marked(
    airflow_db, migrated_database_url, petal_home, monkeypatch
):
    from petal_labeller.store.connection import connect
    from petal_labeller.store.runs import list_runs

    monkeypatch.setenv("AIRFLOW_CONN_PETAL_SMTP", smtp_connection(free_port()))  # refused
    dag = load_dag("petal_label_papers")
    run = dag.test(
        logical_date=datetime(2026, 11, 3, tzinfo=UTC), run_conf={"backend": "sagemaker"}
    )

    assert run.state == "failed"
    with connect(migrated_database_url) as conn:
        [row] = list_runs(conn)
    assert (row.status, row.model_version, row.airflow_run_id) == ("failed", None, run.run_id)
    assert row.error.startswith("check_config: ") and "petal_s3_bucket" in row.error
    assert row.interval_start is not None and row.interval_start < row.interval_end
    assert row.alert_status == "failed" and "Connection refused" in row.alert_error


@pytest.mark.slow
def test_a_run_asking_for_an_unknown_model_has_its_row_and_error(
    airflow_db, migrated_database_url, petal_home, smtp_server
):
    """stage cannot record a row naming a model that is not registered (the store refuses
    it), so before, the run failed with no row at all; now the task's callback records it
    without a model."""
    from petal_labeller.store.connection import connect
    from petal_labeller.store.runs import list_runs

    dag = load_dag("petal_label_papers")
    run = dag.test(logical_date=datetime(2026, 11, 3, tzinfo=UTC), run_conf={"model_version": "v9"})

    assert run.state == "failed"
    with connect(migrated_database_url) as conn:
        [row] = list_runs(conn)
    assert (row.status, row.model_version, row.alert_status) == ("failed", None, "sent")
    assert row.error.startswith("stage: ") and "v9" in row.error
    assert len(smtp_server) == 1 and "v9" in _body(smtp_server[0])
