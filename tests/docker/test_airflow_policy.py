"""The deployment's cluster policy: SageMaker job tasks land in the capped pool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "docker" / "airflow" / "config" / "airflow_local_settings.py"

# Airflow finds airflow_local_settings in $AIRFLOW_HOME/config, as in the image.
POOLS_OF_THE_REAL_DAGS = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(sys.argv[1])
    pools = {f"{dag.dag_id}.{task.task_id}": task.pool
             for dag in bag.dags.values() for task in dag.tasks}
    print(json.dumps({"errors": bag.import_errors, "pools": pools}))
    """
)


def parse_dags(airflow_home: Path, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", POOLS_OF_THE_REAL_DAGS, str(REPO / "dags")],
        env={**os.environ, "AIRFLOW_HOME": str(airflow_home), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def airflow_home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    shutil.copy(POLICY, tmp_path / "config" / POLICY.name)
    return tmp_path


@pytest.mark.slow
def test_airflow_puts_the_dags_sagemaker_jobs_in_the_pool(airflow_home):
    report = parse_dags(airflow_home, PETAL_SAGEMAKER_POOL="sagemaker-capped")
    assert report["errors"] == {}
    pools = report["pools"]
    jobs = (".sagemaker.transform", ".train", ".transform_candidate", ".transform_production")
    job_tasks = {name for name in pools if name.endswith(jobs)}
    assert "petal_label_papers.sagemaker.transform" in job_tasks
    assert {
        f"petal_train_model.sagemaker.{task}"
        for task in ("train", "transform_candidate", "transform_production")
    } <= job_tasks
    for name in job_tasks:
        assert pools[name] == "sagemaker-capped", name
    # Only jobs that hold instances are capped; staging and cleanup are not.
    assert pools["petal_label_papers.sagemaker.create_model"] == "default_pool"
    assert pools["petal_label_papers.sagemaker.delete_model"] == "default_pool"
