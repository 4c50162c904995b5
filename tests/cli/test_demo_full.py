"""`petal demo` end to end: the store, a model from petal_train_model, labels from the DAG.

What the screen shows is checked as a newcomer reads it: the numbers the README gives,
progress while training, no warning or error from a run that went well, and no
relabel run left queued for the first scheduler to start (issue 23 items 8-9).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from petal_labeller.config import REPO_ROOT

TINY_TRAINING = {"max_length": 48, "tune_folds": 2, "check_scan": 8}
PAPERS, CURATED = 30, 24
#: A step's first line, a line indented under it (progress, results, examples).
SCREEN_LINE = re.compile(r"\[\d/9\] \S|      \S|  - \S")


def _demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    # The `petal` script, as `make demo` runs it (`python -m` from the checkout also finds
    # the checkout's egg-info, and Airflow then warns of the plugin's entry point twice).
    petal = str(Path(sys.executable).parent / "petal")
    command = [petal, "demo", "--papers", str(PAPERS)]
    command += ["--labelled", str(CURATED), "--train-options", json.dumps(TINY_TRAINING)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _airflow_rows(home, sql: str) -> list[tuple]:
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        return db.execute(sql).fetchall()


@pytest.mark.slow
def test_demo_trains_and_labels_through_airflow(database_url, tmp_path):
    env = {**os.environ, "PETAL_HOME": str(tmp_path / "home"), "PETAL_DATABASE_URL": database_url}
    env.pop("AIRFLOW_HOME", None)  # the demo brings its own Airflow home under PETAL_HOME
    env = {key: value for key, value in env.items() if not key.startswith("AIRFLOW__")}
    new = PAPERS - CURATED

    first = _demo(env)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert first.stderr == "", "nothing on stderr: no bars, no load report, no warning"
    strays = [line for line in out.splitlines() if not SCREEN_LINE.match(line)]
    assert strays == [], "only the demo's own lines: no log warning or error"
    assert f"{CURATED} with curator labels" in out and f"{new} new papers for the model" in out
    assert "with the fast `demo` preset" in out
    assert re.search(r"^      \d+:\d\d Airflow task train_local$", out, re.M)
    assert re.search(r"^      \d+:\d\d training: inner fold 1/2: bases on \d+ papers$", out, re.M)
    assert "model: trained and promoted" in out and "held-out micro-F1 0." in out
    assert f"labelled {new} of {new} new papers" in out
    assert f"{new} papers now carry model labels" in out
    assert "examples (new papers and their model labels):\n  - " in out
    home = tmp_path / "home"
    # The promotion sent its Asset event, but left no relabel run queued.
    assert _airflow_rows(home, "SELECT count(*) FROM asset_event") == [(1,)]
    assert _airflow_rows(home, "SELECT count(*) FROM asset_dag_run_queue") == [(0,)]
    assert _airflow_rows(home, "SELECT dag_id, state FROM dag_run") == [
        ("petal_train_model", "success")
    ]

    again = _demo(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already there, not retrained" in again.stdout
    assert "labelled 0 of 0 new papers" in again.stdout
    assert f"{new} papers now carry model labels" in again.stdout


def test_the_readme_gives_the_demo_numbers_the_command_uses():
    """The README's count of new papers is what `petal demo` labels by default."""
    from petal_labeller.cli.demo import demo

    defaults = {option.name: option.default for option in demo.params}
    papers, curated = defaults["papers"], defaults["labelled"]
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    said = f"imports the {papers} shared papers ({curated} keep their curator labels, " + (
        f"{papers - curated} stand for new papers"
    )
    text = " ".join(readme.split())
    assert said in text and f"labels today's papers, the {papers - curated} new ones" in text
    assert defaults["preset"] == "demo"


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
