"""`petal airflow env` and `stop-db`: the laptop set-up of README.md and docs/airflow.md.

The live tier (tests/live/conftest.py) runs its services on the settings this command
prints, on a free port; these tests check the output itself, a password-protected
server through the real `airflow` CLI, and stopping an embedded server of their own.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.config import REPO_ROOT
from petal_labeller.store.connection import stop_embedded, with_options
from petal_labeller.store.databases import drop_database

BIN = Path(sys.executable).parent


def _exports(stdout: str) -> dict[str, str]:
    """The `export NAME=VALUE` lines, unquoted as the shell would."""
    found = {}
    for line in stdout.splitlines():
        if line.startswith("export "):
            [assignment] = shlex.split(line.removeprefix("export "))
            name, _, value = assignment.partition("=")
            found[name] = value
    return found


@pytest.fixture
def metadata_name(server_url: str):
    """A metadata database name of the test's own, dropped afterwards."""
    name = f"petal_test_meta_{uuid.uuid4().hex[:10]}"
    yield name
    drop_database(server_url, with_options(server_url, dbname=name))


def _env(*args: str, **environ: str):
    return CliRunner(env=environ).invoke(main, ["airflow", "env", *args])


def test_env_gives_every_api_url_the_one_port_and_metadata_in_postgresql(
    database_url: str, metadata_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PETAL_HOME", str(tmp_path))

    result = _env("--port", "28080", "--metadata-database", metadata_name)

    assert result.exit_code == 0, result.output
    exports = _exports(result.stdout)
    assert exports["AIRFLOW__API__PORT"] == "28080"
    assert exports["AIRFLOW__API__BASE_URL"] == "http://localhost:28080"
    assert exports["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:28080/execution/"
    assert exports["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert exports["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO_ROOT / "dags")
    assert exports["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO_ROOT / "plugins")
    meta = exports["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert meta.startswith("postgresql+psycopg2://") and f"/{metadata_name}" in meta
    # The database exists now, on the store's server: Airflow's `db migrate` needs only it.
    with closing(psycopg2.connect(with_options(database_url, dbname=metadata_name))) as conn:
        assert conn.server_version > 0
    # What was set up is on stderr, as shell comments: eval sees only the exports.
    assert all(line.startswith("# ") for line in result.stderr.splitlines())
    assert "PeTaL store:" in result.stderr and "PETAL_DATABASE_URL" in result.stderr
    assert "http://localhost:28080" in result.stderr
    assert not [line for line in result.stdout.splitlines() if not line.startswith("export ")]


def test_env_takes_the_port_from_airflow_api_port_and_is_safe_to_repeat(
    database_url: str, metadata_name: str, tmp_path: Path
):
    first = _env("--metadata-database", metadata_name, AIRFLOW__API__PORT="28555")
    again = _env("--metadata-database", metadata_name, AIRFLOW__API__PORT="28555")

    assert first.exit_code == again.exit_code == 0, first.output + again.output
    assert _exports(first.stdout)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        "http://localhost:28555/execution/"
    )
    assert first.stdout == again.stdout


@pytest.mark.parametrize("args", [["--host", "localhost;rm -rf ~"], ["--port", "0"]])
def test_env_refuses_a_host_or_port_no_url_can_hold(args: list[str]):
    result = _env(*args)

    assert result.exit_code == 2
    assert "export" not in result.stdout


@pytest.mark.slow
def test_a_password_is_never_printed_and_airflow_still_connects(
    server_url: str, database_url: str, metadata_name: str, tmp_path: Path
):
    """A role with a password: the output masks it, Airflow reads it from a private file."""
    role, secret = f"petal_test_role_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    with closing(psycopg2.connect(server_url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD %s", (secret,))
    try:
        store = with_options(database_url, user=role, password=secret)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PETAL_"))}
        env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", PETAL_DATABASE_URL=store)
        env.update(PETAL_HOME=str(tmp_path))
        script = (
            f'eval "$(petal airflow env --port 28090 --metadata-database {metadata_name})"\n'
            "airflow db check\n"
        )
        shown = subprocess.run(
            [str(BIN / "petal"), "airflow", "env", "--metadata-database", metadata_name],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        checked = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        with closing(psycopg2.connect(server_url)) as admin:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {metadata_name} WITH (FORCE)")
                cur.execute(f"DROP ROLE IF EXISTS {role}")

    assert shown.returncode == 0, shown.stderr
    assert secret not in shown.stdout + shown.stderr
    assert "***" in shown.stderr
    exports = _exports(shown.stdout)
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in exports
    assert "unset AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in shown.stdout
    private = tmp_path / "airflow" / "metadata-database-url"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert exports["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"] == f"cat {private}"
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Connection successful" in checked.stdout + checked.stderr


@pytest.mark.slow
def test_stop_db_stops_the_embedded_server_that_env_started(tmp_path: Path):
    """Its own PETAL_HOME: the embedded server other tests share keeps running."""
    home = tmp_path / "petal-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PETAL_"))}
    env["PETAL_HOME"] = str(home)

    def petal(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(BIN / "petal"), *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    try:
        started = petal("airflow", "env")
        meta = _exports(started.stdout)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert "embedded PostgreSQL in" in started.stderr and "petal airflow stop-db" in (
            started.stderr
        )
        assert "/petal_airflow?" in meta

        stopped = petal("airflow", "stop-db")
        again = petal("airflow", "stop-db")
    finally:
        stop_embedded(home / "pgdata")

    assert stopped.stdout.startswith("stopped the embedded PostgreSQL")
    assert "is not running" in again.stdout
    assert not (home / "pgdata" / "postmaster.pid").exists()


def test_the_docs_laptop_set_up_is_this_command():
    """README.md and docs/airflow.md start `airflow standalone` after this command's eval."""
    for doc in (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "airflow.md"):
        text = doc.read_text(encoding="utf-8")
        before = text[: text.index("\n    airflow standalone")]
        assert 'eval "$(petal airflow env' in before.split("\n\n")[-1], doc
