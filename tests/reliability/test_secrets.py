"""No credential leaks: a DAG run with a password in the database URL and a secret AWS key
in `aws_default` writes neither into task logs, XCom, rendered templates, the metadata
database or the alert e-mail, whether it succeeds or fails; and no credential is in code."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import uuid
from datetime import datetime

import pytest

from petal_labeller.store.connection import with_options
from tests.fixtures.airflow import AIRFLOW_HOME, REPO_ROOT, RUN_DATE_ISO, load_dag

RUN_DATE = datetime.fromisoformat(RUN_DATE_ISO)


def _with_password(url: str, password: str, port: int | None = None) -> str:
    """The test database's URL (TCP or, embedded, a unix socket) carrying a password."""
    return with_options(url, password=password, port=port)


def _metadata_bytes() -> bytes:
    """Everything Airflow stored: XCom, rendered template fields, run conf, task instances."""
    return b"".join(p.read_bytes() for p in AIRFLOW_HOME.glob("airflow.db*"))


def _files_text(folder) -> str:
    return "".join(
        p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()
    ) if folder.exists() else ""  # fmt: skip


@pytest.mark.slow
def test_secrets_stay_out_of_logs_xcom_templates_and_alerts(
    airflow_db, labelling_database, petal_home, moto_sagemaker, smtp_server, monkeypatch,
    caplog, capfd,
):  # fmt: skip
    db_secret, aws_secret = f"dbpw-{uuid.uuid4().hex}", f"awskey-{uuid.uuid4().hex}"
    # Trust authentication ignores the password, so the run works and still carries it.
    monkeypatch.setenv("PETAL_DATABASE_URL", _with_password(labelling_database, db_secret))
    connection = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    connection["password"] = aws_secret
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    caplog.set_level(logging.DEBUG)
    dag = load_dag("petal_label_papers")

    ok = dag.test(logical_date=RUN_DATE, run_conf={"backend": "sagemaker"})
    assert ok.state == "success"
    # A failure is where URLs end up in messages: the database is unreachable now.
    monkeypatch.setenv("PETAL_DATABASE_URL", _with_password(labelling_database, db_secret, port=1))
    failed = dag.test(logical_date=RUN_DATE, run_conf={"backend": "local"})
    assert failed.state == "failed"

    out, err = capfd.readouterr()
    logs = "\n".join(record.getMessage() for record in caplog.records) + out + err
    assert "paper(s) to label" in logs, "task logs were not captured: the check would be empty"
    assert "cannot connect to" in logs, "the failure was not logged"
    assert len(smtp_server) == 1
    mail = smtp_server[0].original_content.decode("utf-8", errors="replace")
    places = {
        "task logs": logs,
        "alert e-mail": mail,
        "metadata database (XCom, rendered fields)": _metadata_bytes().decode(errors="replace"),
        "log folder": _files_text(AIRFLOW_HOME / "logs"),
        "PETAL_HOME": _files_text(petal_home),
    }
    for secret in (db_secret, aws_secret):
        leaks = [place for place, text in places.items() if secret in text]
        assert leaks == [], f"secret found in {leaks}"
    assert "***" in logs, "the failure should name the database with its password hidden"


# Static checks over the repository ------------------------------------------------------
#: Patterns of real credentials (AWS key ids and secrets, private keys, passwords in URLs).
CREDENTIALS = [
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}"),
    re.compile(r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----"),
    re.compile(r"\b[a-z][a-z0-9+]*://[^\s:/@'\"]+:(?P<password>[^\s@/'\"]+)@"),
]
#: Placeholders that are not credentials: test-only values and documentation stand-ins.
PLACEHOLDERS = {
    "***",
    "testing",
    "airflow",
    "postgres",
    "petal",
    "password",
    "PASSWORD",
    "secret",
    "pass",
    "pw",
    "${POSTGRES_PASSWORD}",
    "$POSTGRES_PASSWORD",
    "hunter2",  # the redaction test's fake password
}


#: Keys that AWS publishes in its own documentation as examples: never valid.
DOCUMENTED_EXAMPLES = {"AKIAIOSFODNN7EXAMPLE"}


def test_no_credentials_in_tracked_files():
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in files:
        path = REPO_ROOT / name
        if not path.is_file() or path.suffix in {".png", ".gz", ".safetensors", ".ico"}:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for pattern in CREDENTIALS:
            for match in pattern.finditer(text):
                password = match.groupdict().get("password")
                if match.group(0) in DOCUMENTED_EXAMPLES:
                    continue
                if password is not None and (
                    password in PLACEHOLDERS or password.startswith(("{", "$", "<", "%"))
                ):
                    continue
                found.append(f"{name}: {match.group(0)[:60]}")
    assert found == [], "\n".join(found)
