"""Failures somebody hears of (issue 23, items 3, 4 and 12), in a live Airflow.

The docs' `petal_smtp` examples, verbatim but for host and port, deliver through a
STARTTLS and an SSL server; every failed run of a PeTaL DAG, whatever failed (a
configuration error before `stage`, a training run, a task failed from outside so
its own callback never ran), has a row with its error on the PeTaL page and one
e-mail naming its interval, conf and a link that opens the run; an e-mail that
cannot be sent is an ERROR in the dag-processor's log and a mark on the page.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import requests

from petal_labeller.airflow.notifier import Alert, send_alert
from petal_labeller.config import SHARED_DATA_DIR
from tests.fixtures.airflow import free_port
from tests.live.conftest import VIEWER, Airflow

pytestmark = pytest.mark.slow

LABEL, TRAIN, RELABEL = "petal_label_papers", "petal_train_model", "petal_relabel_papers"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "airflow.md"
MISCONFIGURED = {"backend": "sagemaker"}  # no bucket, image, role or region here


# The docs' connections against real TLS servers -----------------------------------
def _docs_connections() -> dict[int, dict[str, Any]]:
    """The `AIRFLOW_CONN_PETAL_SMTP` JSON examples of docs/airflow.md, by port."""
    section = DOCS.read_text(encoding="utf-8").split("## Alerts on failure", 1)[1]
    section = section.split("\n## ", 1)[0]
    found = [json.loads(m) for m in re.findall(r"AIRFLOW_CONN_PETAL_SMTP='(\{.*?\})'", section)]
    return {conn["port"]: conn for conn in found}


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the `cryptography` package)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsSink:
    """A real SMTP server on a free port: STARTTLS (`implicit=False`) or SSL from the first
    byte; it takes any login (over TLS only) and keeps the messages and logins."""

    def __init__(self, cert: Path, key: Path, implicit: bool) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.messages: list[Any] = []
        self.logins: list[str] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook
                sink.messages.append(envelope)
                return "250 Message accepted for delivery"

        def authenticator(server, session, envelope, mechanism, auth_data):
            sink.logins.append(auth_data.login.decode())
            return AuthResult(success=True)

        self.port = free_port()
        # aiosmtpd sees TLS only when it made it (STARTTLS): over SSL it must not insist.
        tls = (
            {"ssl_context": context, "auth_require_tls": False}
            if implicit
            else {"tls_context": context}
        )
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticator,
            require_starttls=not implicit, auth_required=True, **tls,
        )  # fmt: skip

    def __enter__(self) -> TlsSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A self-signed certificate the client trusts (SSL_CERT_FILE), as a company CA would be."""
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


ALERT = Alert("petal_label_papers", "manual__docs-example", ("check_config",), "check_config: x")


def _send_with(connection: dict[str, Any], port: int, monkeypatch) -> str | None:
    """Send through `connection` with only its host and port changed."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PETAL_SMTP", json.dumps({**connection, "host": "127.0.0.1", "port": port})
    )
    return send_alert(ALERT)


@pytest.mark.parametrize("port, implicit", [(587, False), (465, True)])
# The SSL sink's TLS is implicit, which aiosmtpd cannot see when it checks AUTH.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_the_docs_smtp_connection_delivers(port, implicit, certificate, monkeypatch):
    """Item 3: the documented JSON for 587 (STARTTLS) and 465 (SSL) sends the alert."""
    connection = _docs_connections()[port]
    with TlsSink(*certificate, implicit=implicit) as sink:
        assert _send_with(connection, sink.port, monkeypatch) is None
    assert len(sink.messages) == 1 and sink.logins == [connection["login"]]
    subject = email.message_from_bytes(sink.messages[0].content)["Subject"]
    assert "manual__docs-example" in subject


def test_without_disable_ssl_a_starttls_server_loses_the_alert(certificate, monkeypatch):
    """What the old example did: SSL spoken to a STARTTLS port (the sinks can tell)."""
    connection = _docs_connections()[587]
    extra = {k: v for k, v in connection["extra"].items() if k != "disable_ssl"}
    with TlsSink(*certificate, implicit=False) as sink:
        reason = _send_with({**connection, "extra": extra}, sink.port, monkeypatch)
    assert reason and "WRONG_VERSION_NUMBER" in reason and sink.messages == []


# Failed runs in the live services --------------------------------------------------
def _trigger(live: Airflow, dag_id: str, conf: dict, logical_date: str | None = None) -> str:
    run = live.ok(
        "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf}
    )
    return run["dag_run_id"]


def _row(live: Airflow, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
    """The run's labelling_runs row once its alert's fate is recorded."""
    columns = (
        "run_id, status, model_version, error, interval_start, interval_end, "
        "alert_status, alert_error"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = live.query(
            f"SELECT {columns} FROM labelling_runs WHERE airflow_run_id = %s AND run_id LIKE %s",
            (run_id, f"{dag_id}/%"),
        )
        if rows and rows[0][6] is not None:
            return dict(zip(columns.split(", "), rows[0], strict=True))
        live.check_alive()
        time.sleep(2)
    raise AssertionError(f"{dag_id} {run_id}: no row with an alert status after {timeout} s")


def _mails(live: Airflow, run_id: str) -> list[email.message.Message]:
    found = [email.message_from_bytes(m.content) for m in live.smtp.messages]
    return [m for m in found if run_id in re.sub(r"\s+", " ", m["Subject"])]


def _body(mail: email.message.Message) -> str:
    return "".join(
        part.get_payload(decode=True).decode("utf-8", "replace")
        for part in mail.walk()
        if not part.is_multipart()
    )


def _one_mail(live: Airflow, run_id: str) -> tuple[email.message.Message, str]:
    time.sleep(5)  # a second alert (another task's callback) would have come by now
    mails = _mails(live, run_id)
    assert len(mails) == 1, [m["Subject"] for m in mails]
    return mails[0], _body(mails[0])


def _page_row(live: Airflow, row_id: str) -> tuple[dict[str, Any], str]:
    data = live.api("GET", "/petal/api/summary", user=VIEWER).json()
    [row] = [r for r in data["runs"] if r["run_id"] == row_id]
    return row, live.api("GET", "/petal/", user=VIEWER).text


def _check_link(live: Airflow, body: str, dag_id: str, run_id: str) -> None:
    """The e-mail's link to the run is on the configured base URL and opens that run."""
    [link] = re.findall(r'The run in Airflow: <a href="([^"]+)"', body)
    assert link.startswith(f"{live.url}/dags/{dag_id}/runs/"), link
    path = urlparse(link).path
    assert unquote(path.rsplit("/", 1)[1]) == run_id
    assert requests.get(link, timeout=30).status_code == 200  # the UI serves it
    found = live.ok("GET", f"/api/v2/dags/{dag_id}/dagRuns/{path.rsplit('/', 1)[1]}")
    assert found["dag_run_id"] == run_id and found["state"] == "failed"


@pytest.fixture(scope="module")
def live(airflow_services: Airflow) -> Iterator[Airflow]:
    yield airflow_services


def test_a_run_failing_before_stage_has_its_error_on_the_page_and_one_full_alert(live: Airflow):
    """Items 4 and 12: check_config fails; the row, its error, one e-mail with the
    run's interval, conf and a working link from AIRFLOW__API__BASE_URL."""
    live.set_paused(LABEL, False)
    logical = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    run_id = _trigger(live, LABEL, MISCONFIGURED, logical)

    row = _row(live, LABEL, run_id)

    assert (row["status"], row["model_version"], row["alert_status"]) == ("failed", None, "sent")
    assert row["error"].startswith("check_config: ") and "petal_s3_bucket" in row["error"]
    assert row["interval_start"] is not None and row["interval_start"] < row["interval_end"]
    mail, body = _one_mail(live, run_id)
    assert "check_config" in mail["Subject"]
    assert "petal_s3_bucket" in body and "no AWS region" in body
    interval = f"{row['interval_start'].isoformat()} to {row['interval_end'].isoformat()}"
    assert interval in body
    assert "&quot;backend&quot;: &quot;sagemaker&quot;" in body
    _check_link(live, body, LABEL, run_id)
    shown, page = _page_row(live, row["run_id"])
    assert shown["status"] == "failed" and "petal_s3_bucket" in shown["error"]
    assert shown["alert_status"] == "sent"
    assert '<td class="error">check_config: ' in page and "alert sent" in page


def test_a_failed_training_run_is_on_the_petal_page_with_one_alert(live: Airflow):
    """Item 4: petal_train_model's failures have rows too (no interval: it trains on all)."""
    live.set_paused(TRAIN, False)  # no scheduled run is due this week
    run_id = _trigger(live, TRAIN, MISCONFIGURED)

    row = _row(live, TRAIN, run_id)

    assert (row["status"], row["alert_status"], row["interval_start"]) == ("failed", "sent", None)
    assert row["error"].startswith("check_config: ")
    mail, body = _one_mail(live, run_id)
    assert mail["Subject"].startswith(f"[PeTaL] {TRAIN} failed: check_config")
    _check_link(live, body, TRAIN, run_id)
    shown, _ = _page_row(live, row["run_id"])
    assert shown["dag_id"] == TRAIN and shown["error"] == row["error"]


def test_a_task_failed_from_outside_still_leaves_a_row_and_one_alert(live: Airflow):
    """Item 4: a task whose own callback never ran (marked failed from outside, as a
    killed or unreachable task is): the DAG's callback records the row and alerts."""
    live.set_paused(TRAIN, True)
    run_id = _trigger(live, TRAIN, {})  # queued: the DAG is paused
    live.ok(
        "PATCH",
        f"/api/v2/dags/{TRAIN}/dagRuns/{run_id}/taskInstances/check_config",
        json={"new_state": "failed"},
    )
    live.set_paused(TRAIN, False)

    row = _row(live, TRAIN, run_id)

    assert (row["status"], row["alert_status"]) == ("failed", "sent")
    assert row["error"].startswith("check_config failed")
    mail, _ = _one_mail(live, run_id)
    assert "check_config" in mail["Subject"]


def test_a_lost_alert_is_an_error_in_the_log_and_a_mark_on_the_page(live: Airflow):
    """Item 3: the SMTP server is down; the dag-processor logs an ERROR and the run's
    row and page say the alert failed, and why."""
    from aiosmtpd.controller import Controller

    down = live.smtp.controller
    down.stop()
    try:
        run_id = _trigger(live, RELABEL, MISCONFIGURED)
        row = _row(live, RELABEL, run_id)
    finally:  # a stopped controller cannot start again: a new one on the same port
        live.smtp.controller = Controller(down.handler, hostname="127.0.0.1", port=live.smtp.port)
        live.smtp.controller.start()

    assert row["alert_status"] == "failed" and "Connection refused" in row["alert_error"]
    assert _mails(live, run_id) == []
    # Callbacks log where the dag-processor logs each DAG file's parse (its "file" target).
    logs = Path(live.env.get("AIRFLOW_HOME", live.home)) / "logs" / "dag_processor"
    said = "\n".join(p.read_text(errors="replace") for p in logs.rglob(f"{RELABEL}.py.log"))
    [line] = [ln for ln in said.splitlines() if "NOT sent" in ln and run_id in ln]
    assert "error" in line.lower() and "Connection refused" in line, line
    shown, page = _page_row(live, row["run_id"])
    assert shown["alert_status"] == "failed"
    assert "alert failed: " in page and "Connection refused" in page


def test_a_successful_run_whose_cleanup_failed_alerts_once(live: Airflow, tiny_model_tar):
    """A teardown stays out of the run's state, so its failure leaves the run green: the
    DAG's success callback sends that run's one alert (a failed cleanup may leave paid-for
    SageMaker resources behind)."""
    if not live.query("SELECT 1 FROM model_versions WHERE is_production"):  # this file alone
        live.petal("taxonomy", "load", str(SHARED_DATA_DIR / "taxonomy.json"))
        live.petal("model", "register", str(tiny_model_tar), "--version", "v-alerts", "--promote")
    live.set_paused(LABEL, True)
    run_id = _trigger(live, LABEL, {}, "2001-01-01T00:00:00+00:00")  # queued; no paper that day
    live.ok(
        "PATCH",
        f"/api/v2/dags/{LABEL}/dagRuns/{run_id}/taskInstances/cleanup",
        json={"new_state": "failed"},
    )
    live.set_paused(LABEL, False)

    [done] = live.wait_for_runs(LABEL, 1, lambda r: r["dag_run_id"] == run_id, 300)
    row = _row(live, LABEL, run_id)

    assert done["state"] == "success"
    assert (row["status"], row["alert_status"]) == ("success", "sent")
    mail, body = _one_mail(live, run_id)
    assert mail["Subject"].startswith(f"[PeTaL] {LABEL} failed: cleanup in ")
    assert "the run succeeded, but cleanup failed" in body
