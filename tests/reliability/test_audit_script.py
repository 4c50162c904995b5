"""`scripts/audit.py` (make audit) never passes silently when it could not audit."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.fixtures.airflow import REPO_ROOT

UNREACHABLE = {"PETAL_AUDIT_PYPI_PROBE": "http://127.0.0.1:9/pypi/pip/24.0/json",
               "PETAL_AUDIT_OSV_PROBE": "http://127.0.0.1:9/v1/query"}  # fmt: skip


def _run(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "audit.py")],
        capture_output=True, text=True, timeout=120, env={**os.environ, **UNREACHABLE, **env},
    )  # fmt: skip


def test_no_service_is_a_clear_skip_by_default():
    result = _run(PETAL_AUDIT_REQUIRED="0")
    assert result.returncode == 0
    assert "audit: SKIPPED" in result.stdout and "127.0.0.1:9" in result.stdout


def test_no_service_fails_where_the_audit_is_required():
    result = _run(PETAL_AUDIT_REQUIRED="1")
    assert result.returncode == 1
    assert "audit: FAILED" in result.stderr
