"""Airflow as a team runs it: `airflow api-server`, `scheduler` and `dag-processor` as
subprocesses, metadata in a PostgreSQL database of their own, the PeTaL store in another.

Started once per session (they take about a minute to come up), stopped by PID;
each service logs to a file under the session's folder, and a failing live test
gets the tail of every log attached to its report. Tests talk to Airflow only
through its public clients: the REST API v2 (JWT from /auth/token) and the
`airflow` CLI. Alerts go to a local SMTP server (aiosmtpd) that keeps what it
receives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from petal_labeller.store.connection import database_name
from petal_labeller.store.databases import create_database, drop_database
from tests.fixtures.airflow import (
    REPO_ROOT,
    free_port,
    smtp_connection,
)

ADMIN, ADMIN_PASSWORD = "petal-admin", "live-admin-password"
VIEWER, VIEWER_PASSWORD = "petal-viewer", "live-viewer-password"
JWT_SECRET = "petal-live-tests-jwt-secret-" + "fedcba9876543210" * 3
SERVICES = ("api-server", "scheduler", "dag-processor")
#: The scheduled schedule starts three days ago: unpausing catches up three daily runs.
CATCHUP_DAYS = 3
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START_DATE = TODAY - timedelta(days=CATCHUP_DAYS)
BIN = Path(sys.executable).parent


class SmtpSink:
    """A real SMTP server on a free loopback port; `messages` holds what it received."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook
                sink.messages.append(envelope)
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def connection(self) -> str:
        return smtp_connection(self.port)


#: What the REST API takes back of a listed Variable or Connection; passwords are listed
#: masked, so a restore never writes one (the mask would become the password).
_WRITABLE = {
    "variables": ("key", "value", "description"),
    "connections": (
        "connection_id",
        "conn_type",
        "description",
        "host",
        "login",
        "schema",
        "port",
        "extra",
    ),
}


def _writable(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    return {name: item[name] for name in _WRITABLE[kind] if name in item}


@dataclass
class Airflow:
    """The running services and how to talk to them."""

    url: str
    env: dict[str, str]
    home: Path
    store_url: str
    logs: dict[str, Path]
    smtp: SmtpSink
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    # REST API v2 -------------------------------------------------------------------
    def token(self, user: str = ADMIN, password: str = ADMIN_PASSWORD) -> str:
        if user not in self._tokens:
            reply = requests.post(
                f"{self.url}/auth/token",
                json={"username": user, "password": password},
                timeout=30,
            )
            assert reply.status_code == 201, reply.text
            self._tokens[user] = reply.json()["access_token"]
        return self._tokens[user]

    def api(self, method: str, path: str, user: str = ADMIN, **kwargs: Any) -> requests.Response:
        password = ADMIN_PASSWORD if user == ADMIN else VIEWER_PASSWORD
        headers = {"Authorization": f"Bearer {self.token(user, password)}"}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.api(method, path, **kwargs)
        assert reply.status_code < 300, f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json() if reply.content else None

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.ok("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of `dag_id`, oldest first, read a page at a time (the API gives 100 at
        most: a test counting runs, or waiting for its own, must see past the 100th)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.ok("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={
                "limit": 100, "offset": len(found), "order_by": "id",
            })  # fmt: skip
            found += page["dag_runs"]
            if not page["dag_runs"] or len(found) >= page["total_entries"]:
                return found

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        found = self.ok("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        return {ti["task_id"]: ti for ti in found["task_instances"]}

    def wait_for_runs(
        self,
        dag_id: str,
        count: int,
        where: Callable[[dict[str, Any]], bool] = lambda run: True,
        timeout: float = 300,
    ) -> list[dict[str, Any]]:
        """Wait until `count` runs matching `where` have finished; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [run for run in self.runs(dag_id) if where(run)]
            done = [run for run in runs if run["state"] in ("success", "failed")]
            if len(done) >= count:
                return done
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{dag_id}: {len(done)} of {count} runs finished after {timeout} s: "
                    + json.dumps([(r["dag_run_id"], r["state"]) for r in runs])
                )
            self.check_alive()
            time.sleep(2)

    def wait_until_idle(self, dag_id: str, timeout: float = 600) -> None:
        """Wait until no run of `dag_id` is queued or running.

        The labelling DAG runs one run at a time (max_active_runs 1): a test that times
        what its own run does waits for the runs ahead of it (unpausing catches up the
        schedule's days; an earlier test's backfill may still be going) first.
        """
        deadline = time.monotonic() + timeout
        while busy := [r for r in self.runs(dag_id) if r["state"] in ("queued", "running")]:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{dag_id}: runs still active after {timeout} s: "
                    + json.dumps([(r["dag_run_id"], r["state"]) for r in busy])
                )
            self.check_alive()
            time.sleep(2)

    def settings(self) -> dict[str, dict[str, Any]]:
        """Every Variable and Connection, as the REST API lists them."""
        variables = self.ok("GET", "/api/v2/variables?limit=1000")["variables"]
        connections = self.ok("GET", "/api/v2/connections?limit=1000")["connections"]
        return {
            "variables": {v["key"]: v for v in variables},
            "connections": {c["connection_id"]: c for c in connections},
        }

    def restore_settings(self, before: dict[str, dict[str, Any]]) -> None:
        """Put Variables and Connections back as `before` had them: the session's services
        are shared, so what one test sets (the docs' `petal_backend sagemaker`) must not
        decide how the next test's runs go."""
        now = self.settings()
        for kind, path in (
            ("variables", "/api/v2/variables"),
            ("connections", "/api/v2/connections"),
        ):
            for name, item in now[kind].items():
                if name not in before[kind]:
                    self.ok("DELETE", f"{path}/{name}")
                elif item != before[kind][name]:
                    body = _writable(kind, before[kind][name])
                    self.ok("PATCH", f"{path}/{name}", json=body, params={"update_mask": [*body]})
            for name, item in before[kind].items():
                if name not in now[kind]:
                    self.ok("POST", path, json=_writable(kind, item))

    # The airflow CLI ---------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
        )  # fmt: skip
        said = f"{result.stdout}\n{result.stderr}"
        assert result.returncode == 0, f"airflow {' '.join(args)}:\n{said}"
        return result

    def petal(self, *args: str, code: int = 0) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "petal"), *args],
            env=self.env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
        )  # fmt: skip
        said = f"{result.stdout}\n{result.stderr}"
        assert result.returncode == code, f"petal {' '.join(args)}:\n{said}"
        return result

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with closing(psycopg2.connect(self.store_url)) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"airflow {name} exited with {process.returncode}")

    def log_tails(self, lines: int = 60) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"===== airflow {name} ({path}) =====\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)


def _laptop_settings(env: dict[str, str], port: int, meta_url: str) -> dict[str, str]:
    """What `petal airflow env` prints for this port, as bash's `eval` of it sets it.

    The services run on these settings and nothing else of Airflow's URLs or metadata,
    so every live test is also a test that the docs' set-up works on a port not 8080.
    """
    args = ["airflow", "env", "--host", "127.0.0.1", "--port", str(port)]
    printed = subprocess.run(
        [str(BIN / "petal"), *args, "--metadata-database", database_name(meta_url)],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    evaluated = subprocess.run(
        ["bash", "-c", 'eval "$1" && env -0', "eval", printed.stdout],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    pairs = (item.partition("=") for item in evaluated.stdout.split("\0") if item)
    return {name: value for name, _, value in pairs if name.startswith("AIRFLOW")}


def _environment(home: Path, meta_url: str, store_url: str, port: int, smtp: SmtpSink) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "AWS_", "PETAL_"))
    }
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({ADMIN: ADMIN_PASSWORD, VIEWER: VIEWER_PASSWORD}))
    url = f"http://127.0.0.1:{port}"
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PETAL_DATABASE_URL": store_url,
            "PETAL_HOME": str(home / "petal-home"),
        }
    )
    laptop = _laptop_settings(env, port, meta_url)
    own = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin,{VIEWER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "15",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    assert not own.keys() & laptop.keys(), "the live tier overrides petal airflow env"
    env.update(laptop)
    env.update(own)
    env.update(
        {
            "AIRFLOW_CONN_PETAL_SMTP": smtp.connection(),
            # No AWS anywhere: no region, no credentials, no config files.
            "AWS_CONFIG_FILE": str(home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PETAL_ALERT_TO": "petal-team@petal.test",
            # SageMaker status polls (on moto, in test_live_deferral) every 2 s, not 30.
            "PETAL_SAGEMAKER_POLL_SECONDS": "2",
            # The review sensor looks for answers every 2 s (test_live_review), not 10 min.
            "PETAL_REVIEW_POLL_SECONDS": "2",
            "PETAL_START_DATE": f"{START_DATE:%Y-%m-%d}",
            "PETAL_AIRFLOW_URL": url,
            "PETAL_AIRFLOW_USER": ADMIN,
            "PETAL_AIRFLOW_PASSWORD": ADMIN_PASSWORD,
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    shared = os.environ.get("PETAL_SHARED_DATA")
    if shared:
        env["PETAL_SHARED_DATA"] = shared
    return env


def _start(name: str, env: dict[str, str], log: Path, port: int) -> subprocess.Popen:
    args = [str(BIN / "airflow"), name]
    if name == "api-server":
        # The port is petal airflow env's AIRFLOW__API__PORT, as under `airflow standalone`.
        assert env["AIRFLOW__API__PORT"] == str(port)
        args += ["--host", "127.0.0.1"]
    with log.open("ab") as out:
        # A session of its own: stopping it by PID stops its workers too.
        return subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            start_new_session=True,
        )  # fmt: skip


def _stop_all(processes: list[subprocess.Popen], grace_s: float = 30) -> None:
    """SIGTERM every service's process group at once, SIGKILL what is left after the grace."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_until_ready(airflow: Airflow, timeout: float = 240) -> None:
    """Healthy API server and scheduler, and every PeTaL DAG parsed."""
    deadline = time.monotonic() + timeout
    expected = {"petal_label_papers", "petal_relabel_papers", "petal_train_model"}
    last = ""
    while time.monotonic() < deadline:
        airflow.check_alive()
        try:
            health = requests.get(f"{airflow.url}/api/v2/monitor/health", timeout=5).json()
            dags = {d["dag_id"] for d in airflow.ok("GET", "/api/v2/dags?limit=100")["dags"]}
            last = f"health={health} dags={sorted(dags)}"
            if health["scheduler"]["status"] == "healthy" and expected <= dags:
                return
        except (requests.RequestException, AssertionError, KeyError) as exc:
            last = repr(exc)
        time.sleep(2)
    raise AssertionError(f"Airflow not ready after {timeout} s: {last}\n{airflow.log_tails()}")


@pytest.fixture(scope="session")
def airflow_services(server_url: str) -> Iterator[Airflow]:
    """api-server, scheduler and dag-processor on free loopback ports, for the session.

    Airflow's metadata and the PeTaL store are two new databases on the tests' server:
    PETAL_DATABASE_URL's, else the embedded one, so a newcomer's `make test` runs this too.
    """
    home = Path(tempfile.mkdtemp(prefix="petal-live-"))
    meta_url = create_database(server_url, prefix="petal_live_airflow")
    store_url = create_database(server_url, prefix="petal_live")
    smtp = SmtpSink()
    smtp.controller.start()
    port = free_port()
    env = _environment(home, meta_url, store_url, port, smtp)
    logs = {name: home / f"{name}.log" for name in SERVICES}
    airflow = Airflow(f"http://127.0.0.1:{port}", env, home, store_url, logs, smtp)
    _LIVE.append(airflow)
    try:
        airflow.cli("db", "migrate", timeout=300)
        airflow.petal("db", "upgrade")
        for name in SERVICES:
            airflow.processes[name] = _start(name, env, logs[name], port)
        _wait_until_ready(airflow)
        yield airflow
    finally:
        _stop_all(list(airflow.processes.values()))
        smtp.controller.stop()
        _LIVE.clear()
        for url in (meta_url, store_url):
            drop_database(server_url, url)
        shutil.rmtree(home, ignore_errors=True)


_LIVE: list[Airflow] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing live test carries the tail of every service's log."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _LIVE:
        report.sections.append(("Airflow service logs", _LIVE[0].log_tails()))
