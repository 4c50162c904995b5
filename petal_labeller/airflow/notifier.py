"""The failure alert every PeTaL DAG sends: the smtp provider's SmtpNotifier.

Where it goes is configuration, not code: the SMTP server, sender and TLS
settings come from the Airflow connection `petal_smtp` (for example
`AIRFLOW_CONN_PETAL_SMTP='smtp://mail.example.org:587?from_email=airflow%40example.org'`),
the recipients from PETAL_ALERT_TO (comma-separated) on the scheduler.
"""

from __future__ import annotations

import os

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

ALERT_CONN_ID = "petal_smtp"
DEFAULT_RECIPIENT = "petal-alerts@localhost"

SUBJECT = "[PeTaL] {{ dag.dag_id }} failed: {{ ti.task_id }} in {{ run_id }}"
BODY = (
    "<p>Task <code>{{ ti.task_id }}</code> of DAG <b>{{ dag.dag_id }}</b>, run "
    "<code>{{ run_id }}</code>, failed after {{ ti.try_number }} tries.</p>"
    "<p>Error: <code>{{ exception | string | e }}</code></p>"
    "<p>Task log: {{ ti.log_url }}</p>"
)


def alert_recipients() -> list[str]:
    """Addresses from PETAL_ALERT_TO; read at parse time, so no DB or Variable lookup."""
    raw = os.environ.get("PETAL_ALERT_TO", DEFAULT_RECIPIENT)
    return [address.strip() for address in raw.split(",") if address.strip()]


def failure_notifier() -> SmtpNotifier:
    """An SmtpNotifier for every task's `on_failure_callback` (set in the DAGs' default_args).

    Task-level rather than DAG-level: it fires once the last retry has failed,
    names the task and its error, and runs wherever the task runs (DAG-level
    callbacks need the DAG processor and cannot be exercised by `dag.test()`).
    """
    return SmtpNotifier(
        to=alert_recipients(),
        smtp_conn_id=ALERT_CONN_ID,
        subject=SUBJECT,
        html_content=BODY,
    )
