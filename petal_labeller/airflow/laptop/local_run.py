"""Run a PeTaL DAG once, in this process, with no Airflow services: `dag.test()`.

For `make demo`, benchmarks and a laptop: Airflow's metadata lives in SQLite
under AIRFLOW_HOME (default PETAL_HOME/airflow) and the DAGs come from this
repository. Airflow reads its settings when first imported, so call
`configure()` before anything imports airflow; settings already in the
environment win.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from petal_labeller import config
from petal_labeller.airflow.dag_files import dags_folder

DAGS_FOLDER = dags_folder()
PLUGINS_FOLDER = config.REPO_ROOT / "plugins"


@dataclass(frozen=True)
class RunResult:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None]
    task_seconds: dict[str, float]


def airflow_settings(home: Path) -> dict[str, str]:
    """A self-contained Airflow: SQLite metadata, this repo's dags and plugins, quiet logs."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def configure(home: Path | None = None) -> Path:
    """Point Airflow at a local home (unless the environment already does); returns it."""
    home = Path(os.environ.get("AIRFLOW_HOME") or home or config.petal_home() / "airflow")
    if "airflow" in sys.modules and "AIRFLOW_HOME" not in os.environ:
        raise RuntimeError("configure() must run before airflow is imported")
    home.mkdir(parents=True, exist_ok=True)
    for name, value in airflow_settings(home).items():
        os.environ.setdefault(name, value)
    return home


def _migrate(home: Path) -> None:
    from airflow.utils.db import initdb

    stamp = home / ".petal-db-ready"
    if not stamp.exists():
        initdb()
        stamp.touch()


def run_dag(dag_id: str, logical_date: datetime, conf: dict[str, Any] | None = None) -> RunResult:
    """Parse the DAG folder and run `dag_id` once for `logical_date`, tasks in this process."""
    home = configure()
    _migrate(home)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(DAGS_FOLDER))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise LookupError(f"no DAG {dag_id!r} in {DAGS_FOLDER}")
    run = dag.test(logical_date=logical_date, run_conf=conf or {})
    tis = run.get_task_instances()
    states = {ti.task_id: ti.state for ti in tis}
    seconds = {ti.task_id: ti.duration for ti in tis if ti.duration is not None}
    return RunResult(dag_id, run.run_id, str(run.state), states, seconds)
