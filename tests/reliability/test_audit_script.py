"""`scripts/audit.py` (make audit) never passes silently when it could not audit.

PyPI is faked at the HTTP boundary by a small server answering `/NAME/json`
the way PyPI's per-project JSON does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.fixtures.airflow import REPO_ROOT

UNREACHABLE = {"PETAL_AUDIT_PYPI_PROBE": "http://127.0.0.1:9/pypi/pip/24.0/json",
               "PETAL_AUDIT_OSV_PROBE": "http://127.0.0.1:9/v1/query",
               "PETAL_AUDIT_PYPI_PROJECTS": "http://127.0.0.1:9/pypi"}  # fmt: skip
#: name -> (latest release, its vulnerabilities), as PyPI's project JSON gives them.
PROJECTS = {
    "safe": ("1.0", []),
    "old": ("2.0", [{"id": "PYSEC-OLD", "withdrawn": None}]),
    "bad": ("0.5", [{"id": "PYSEC-BAD", "withdrawn": None},
                    {"id": "PYSEC-GONE", "withdrawn": "2026-01-01T00:00:00Z"}]),
}  # fmt: skip


@pytest.fixture
def fake_pypi() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.strip("/").removesuffix("/json")
            if name not in PROJECTS:
                self.send_error(404)
                return
            latest, vulnerabilities = PROJECTS[name]
            body = json.dumps({"info": {"version": latest}, "vulnerabilities": vulnerabilities})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _requirements(tmp_path, *pins: str) -> str:
    path = tmp_path / "requirements.txt"
    path.write_text("# pinned\n" + "\n".join(pins) + "\n")
    return str(path)


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


def test_without_the_services_latest_release_data_finds_a_vulnerable_pin(fake_pypi, tmp_path):
    requirements = _requirements(
        tmp_path, "safe==1.0", "old==1.0", "bad[extra]==0.5 ; python_version>'3'"
    )

    result = _run(PETAL_AUDIT_PYPI_PROJECTS=fake_pypi, PETAL_AUDIT_REQUIREMENTS=requirements)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 of 3 pinned packages audited" in result.stdout
    assert "VULNERABLE bad==0.5: PYSEC-BAD" in result.stdout
    assert "PYSEC-GONE" not in result.stdout  # withdrawn
    assert "PYSEC-OLD" not in result.stdout  # describes 2.0, not the pinned 1.0
    assert "old==1.0 (latest 2.0)" in result.stdout


def test_a_partial_audit_passes_by_default_and_fails_where_required(fake_pypi, tmp_path):
    requirements = _requirements(tmp_path, "safe==1.0", "old==1.0")
    env = {"PETAL_AUDIT_PYPI_PROJECTS": fake_pypi, "PETAL_AUDIT_REQUIREMENTS": requirements}

    relaxed, required = _run(**env, PETAL_AUDIT_REQUIRED="0"), _run(**env, PETAL_AUDIT_REQUIRED="1")

    assert relaxed.returncode == 0 and "1 of 2 pinned packages audited" in relaxed.stdout
    assert required.returncode == 1 and "1 package(s) could not be audited" in required.stderr
