"""Airflow's settings for a laptop: every URL from one port, metadata in PostgreSQL.

On its defaults `airflow standalone` breaks in two ways (issue 23): tasks call the
execution API at localhost:8080 whatever port the API server listens on, and its
SQLite metadata database locks under a backfill. `laptop_env` derives the API's
URLs from one port and puts Airflow's metadata in a database of its own on the
store's server (the embedded PostgreSQL unless PETAL_DATABASE_URL names another).
No Airflow import: it only writes settings for the `airflow` commands to read.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from petal_labeller import config
from petal_labeller.store.connection import conninfo, redact, resolve_url, sqlalchemy_url
from petal_labeller.store.databases import ensure_database

DEFAULT_PORT = 8080
METADATA_DATABASE = "petal_airflow"
#: Where a metadata URL with a password is kept (mode 0600), read by Airflow's `_CMD`.
METADATA_URL_FILE = "metadata-database-url"
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}")


@dataclass(frozen=True)
class LaptopEnv:
    """What to export (and unset) for the `airflow` commands, and what to show the user."""

    exports: dict[str, str]
    unset: tuple[str, ...]
    store: str  #: the store's connection string, password masked
    metadata: str  #: Airflow's metadata database, password masked
    ui_url: str
    embedded: Path | None  #: the embedded server's data folder, when it is the store

    def shell(self) -> str:
        """`export` (and `unset`) lines for `eval`, every value quoted for the shell."""
        lines = [f"unset {name}" for name in self.unset]
        lines += [f"export {name}={shlex.quote(value)}" for name, value in self.exports.items()]
        return "\n".join(lines) + "\n"


def laptop_env(
    port: int = DEFAULT_PORT,
    host: str = "localhost",
    metadata_database: str = METADATA_DATABASE,
) -> LaptopEnv:
    """The set-up for this checkout; starts the embedded server and creates the database."""
    if not _HOST.fullmatch(host):
        raise ValueError(f"host {host[:40]!r} is not a host name or IPv4 address")
    embedded = None if config.database_url() else config.petal_home() / "pgdata"
    store = resolve_url()
    metadata = ensure_database(store, metadata_database)
    home = config.petal_home() / "airflow"
    base = f"http://{host}:{port}"
    exports = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(config.REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",  # a laptop needs no 32 LocalExecutor workers
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
    }
    unset: tuple[str, ...] = ()
    if conninfo(metadata).get("password"):
        # Printed lines end up on screens and in shell history: Airflow reads the secret
        # from a private file instead (`_CMD` wins only when the plain setting is unset).
        secret = _write_private(home / METADATA_URL_FILE, sqlalchemy_url(metadata))
        exports["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"] = f"cat {shlex.quote(str(secret))}"
        unset = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",)
    else:
        exports["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sqlalchemy_url(metadata)
    shown = sqlalchemy_url(metadata, hide_password=True)
    return LaptopEnv(exports, unset, redact(store), shown, base, embedded)


def _write_private(path: Path, text: str) -> Path:
    """Write `text` readable by this user only, also when the file already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    return path
