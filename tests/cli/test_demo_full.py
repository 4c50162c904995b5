"""`petal demo` end to end: the store, a model from petal_train_model, labels from the DAG."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TINY_TRAINING = {"max_length": 48, "tune_folds": 2}


def _demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "petal_labeller.cli", "demo", "--papers", "30"]
    command += ["--labelled", "24", "--train-options", json.dumps(TINY_TRAINING)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_demo_trains_and_labels_through_airflow(database_url, tmp_path):
    env = {**os.environ, "PETAL_HOME": str(tmp_path / "home"), "PETAL_DATABASE_URL": database_url}
    env.pop("AIRFLOW_HOME", None)  # the demo brings its own Airflow home under PETAL_HOME
    env = {key: value for key, value in env.items() if not key.startswith("AIRFLOW__")}

    first = _demo(env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "model: trained and promoted" in first.stdout
    assert "labelling: run petal-label/" in first.stdout
    assert "30 papers now carry model labels" in first.stdout
    assert "examples (new papers and their model labels):\n  - " in first.stdout
    assert (tmp_path / "home" / "airflow" / "airflow.db").is_file()

    again = _demo(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already there, not retrained" in again.stdout
    assert "30 papers now carry model labels" in again.stdout


def test_demo_refuses_train_options_that_are_not_an_object(petal_cli_env):
    result = subprocess.run(
        [sys.executable, "-m", "petal_labeller.cli", "demo", "--train-options", "[1]"],
        capture_output=True,
        text=True,
        env=petal_cli_env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--train-options" in result.stderr and "JSON object" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def petal_cli_env(database_url) -> dict[str, str]:
    return {**os.environ, "PETAL_DATABASE_URL": database_url}
