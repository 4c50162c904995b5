"""Issue 23 item 6: on a port not 8080, tasks succeed with the settings `petal airflow env` printed.

The services of this tier run on exactly those settings (tests/live/conftest.py,
`_laptop_settings`); before them, a task there failed with `httpx.ConnectError` at
"Pre Execute", calling the execution API on 8080.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from petal_labeller.config import SHARED_DATA_DIR
from tests.live.conftest import Airflow

pytestmark = pytest.mark.slow

RELABEL = "petal_relabel_papers"


def test_a_labelling_run_succeeds_on_the_port_petal_airflow_env_gave(
    airflow_services: Airflow, tiny_model_tar
):
    live = airflow_services
    port = urlsplit(live.url).port
    assert port != 8080
    assert live.env["AIRFLOW__API__PORT"] == str(port)
    assert live.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{live.url}/execution/"
    assert live.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    live.petal("taxonomy", "load", str(SHARED_DATA_DIR / "taxonomy.json"))
    before = len(live.runs(RELABEL))

    # The promotion's Asset event (REST API on that port) starts petal_relabel_papers.
    out = live.petal("model", "register", str(tiny_model_tar), "--version", "v-port", "--promote")
    assert "sent" in out.stdout, out.stdout
    done = live.wait_for_runs(RELABEL, before + 1, timeout=300)[-1]

    tis = live.task_instances(RELABEL, done["dag_run_id"])
    states = {task: ti["state"] for task, ti in tis.items()}
    assert done["state"] == "success", states
    assert states["check_config"] == "success" and states["cleanup"] == "success", states
    assert set(states.values()) <= {"success", "skipped"}, states
