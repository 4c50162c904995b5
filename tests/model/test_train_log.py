"""A training job's own output, and its evaluation's: progress at INFO, nothing on stderr.

A task log shows every stderr line as an ERROR (Airflow's supervisor), so the
transformers load report and progress bars training used to print there read as
seven failures in a run that went well.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

TRAIN = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s|%(message)s")
from petal_labeller.model.config import preset
from petal_labeller.model.train import train_artefact
train_artefact(sys.argv[1], sys.argv[2], sys.argv[3],
               preset("demo", max_length=48, tune_folds=2, check_scan=8), report=False)
"""
#: What petal_train_model's evaluate task does with the candidate, in a process of its own.
#: Logging goes to stdout, as a task's goes to its log: only stray writes reach stderr.
EVALUATE = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
from petal_labeller.model.predict import predict_file
predict_file(sys.argv[1], sys.argv[2], sys.argv[3])
"""


def _python(code: str, *args: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_training_and_its_evaluation_write_nothing_to_stderr(tiny_training_data, tmp_path):
    papers, taxonomy = tiny_training_data
    result = _python(TRAIN, papers, taxonomy, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "stderr is ERROR in a task log"
    assert "LOAD REPORT" not in result.stdout
    progress = [
        line.split("|", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("petal_labeller.model.progress|")
    ]
    assert progress[0] == "training: preset demo, 24 papers, 131 labels"
    assert "training: inner fold 2/2: bases on 12 papers" in progress
    assert progress[-1] == "training: saving the artefact and choosing its check papers"
    artefact = tmp_path / "out" / "model.tar.gz"

    scored = _python(EVALUATE, artefact, papers, tmp_path / "scored.jsonl")
    assert scored.returncode == 0, scored.stderr
    assert scored.stderr == "", "no 'Loading weights' bar in the evaluate task's log"
    assert len((tmp_path / "scored.jsonl").read_text().splitlines()) == 24
