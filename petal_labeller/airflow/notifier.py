"""The failure alert every PeTaL DAG sends: one e-mail per failed run, through the
smtp provider's SmtpNotifier.

Where it goes is configuration, not code: the SMTP server, sender and TLS
settings come from the Airflow connection `petal_smtp` (docs/airflow.md, "Alerts
on failure", for port 587 with STARTTLS and port 465 with SSL), the recipients
from PETAL_ALERT_TO (comma-separated), the links from Airflow's `[api] base_url`.
The e-mail is built here, in Python, and handed to the notifier ready-made: an
error message holding `{{` is text, never a template.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from petal_labeller import config

log = logging.getLogger(__name__)

ALERT_CONN_ID = "petal_smtp"
DEFAULT_RECIPIENT = config.SETTINGS["PETAL_ALERT_TO"].default[0]
#: Airflow's own default for `[api] base_url`.
DEFAULT_BASE_URL = "http://localhost:8080"


@dataclass(frozen=True)
class Alert:
    """What a failure e-mail says about one failed DAG run."""

    dag_id: str
    run_id: str
    failed_tasks: tuple[str, ...] = ()
    error: str | None = None
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    conf: dict[str, Any] = field(default_factory=dict)
    base_url: str = DEFAULT_BASE_URL


def alert_recipients() -> list[str]:
    """Addresses from PETAL_ALERT_TO, no DB or Variable lookup. A bad value must not
    lose the alert: it goes to the default, with a warning naming the setting."""
    return list(config.get_or_default("PETAL_ALERT_TO", warn=log.warning))


def base_url() -> str:
    """Airflow's `[api] base_url` (AIRFLOW__API__BASE_URL): what a reader's browser opens."""
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback=DEFAULT_BASE_URL) or DEFAULT_BASE_URL


def run_link(alert: Alert) -> str:
    """The run's page in the Airflow UI."""
    dag, run = quote(alert.dag_id, safe=""), quote(alert.run_id, safe="")
    return f"{alert.base_url.rstrip('/')}/dags/{dag}/runs/{run}"


def task_link(alert: Alert, task_id: str) -> str:
    """A failed task's page (its log) in the Airflow UI."""
    return f"{run_link(alert)}/tasks/{quote(task_id, safe='')}"


def alert_subject(alert: Alert) -> str:
    tasks = ", ".join(alert.failed_tasks) or "the run"
    return f"[PeTaL] {alert.dag_id} failed: {tasks} in {alert.run_id}"


def _interval(alert: Alert) -> str:
    if alert.interval_start is None or alert.interval_end is None:
        return "none (a run without a data interval labels every pending paper)"
    return f"{alert.interval_start.isoformat()} to {alert.interval_end.isoformat()}"


def alert_body(alert: Alert) -> str:
    """The e-mail's HTML: the run, its failed tasks with links, error, interval and conf."""
    from petal_labeller.store.runs import redact_error

    e = html.escape
    tasks = "".join(
        f'<li><a href="{e(task_link(alert, task))}">{e(task)}</a></li>'
        for task in alert.failed_tasks
    )
    conf = redact_error(json.dumps(alert.conf, indent=2, sort_keys=True, default=str))
    return (
        f"<p>DAG <b>{e(alert.dag_id)}</b>, run <code>{e(alert.run_id)}</code>, failed.</p>"
        f"<p>Failed tasks:</p><ul>{tasks or '<li>none recorded</li>'}</ul>"
        f"<p>Error:</p><pre>{e(alert.error or 'no error recorded: see the task logs')}</pre>"
        f"<p>Data interval: {e(_interval(alert))}</p>"
        f"<p>Conf:</p><pre>{e(conf)}</pre>"
        f'<p>The run in Airflow: <a href="{e(run_link(alert))}">{e(run_link(alert))}</a></p>'
    )


def send_alert(alert: Alert) -> str | None:
    """E-mail the alert; None when sent, else why not (also logged at ERROR).

    Never raises: a lost alert is reported on the run's row by the caller.
    """
    from petal_labeller.store.runs import redact_error

    notifier = SmtpNotifier(
        to=alert_recipients(),
        smtp_conn_id=ALERT_CONN_ID,
        subject=alert_subject(alert),
        html_content=alert_body(alert),
    )
    try:
        # notify(), not __call__: the subject and body are final, not Jinja templates.
        notifier.notify({"dag": None})
    except Exception as exc:
        reason = redact_error(f"{type(exc).__name__}: {exc}")
        log.error(
            "Failure alert for %s run %s NOT sent through connection %r: %s",
            alert.dag_id, alert.run_id, ALERT_CONN_ID, reason,
        )  # fmt: skip
        return reason
    log.info("Failure alert for %s run %s sent to %s", alert.dag_id, alert.run_id,
             ", ".join(alert_recipients()))  # fmt: skip
    return None
