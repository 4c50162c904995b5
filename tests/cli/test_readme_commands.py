"""The README's `petal` commands, verbatim, as a newcomer runs them after `make venv`:
a checkout-like folder beside the shared data, no PETAL_DATABASE_URL (the embedded
server under the checkout's .petal/), the real 996 papers, the default training.

The README's other blocks are run elsewhere: `make demo` is `petal demo`
(tests/cli/test_demo_full.py), `make test` is CI itself, and the Airflow block's
`petal airflow env` under the live tier (tests/live/test_live_laptop.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from petal_labeller.config import REPO_ROOT, SHARED_DATA_DIR
from tests.fixtures.docs import doc_blocks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def _petal_block() -> str:
    [block] = [b for b in doc_blocks(REPO_ROOT / "README.md") if b.startswith("petal db upgrade")]
    return block


def test_every_petal_command_in_the_readme_works_as_written(tmp_path: Path):
    work = tmp_path / "checkout"
    work.mkdir()
    (work / ".venv").symlink_to(REPO_ROOT / ".venv")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "petal").symlink_to(SHARED_DATA_DIR)
    env = {
        key: value for key, value in os.environ.items()
        if key != "PETAL_DATABASE_URL" and not key.startswith(("PETAL_AIRFLOW_", "PETAL_SHARED"))
    }  # fmt: skip
    env["PETAL_HOME"] = str(work / ".petal")  # what a checkout's own .petal/ is
    block = _petal_block()
    script = f"set -euo pipefail\n. .venv/bin/activate\n{block}\n"
    try:
        result = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
            timeout=2100,
        )  # fmt: skip
    finally:
        subprocess.run(
            ["bash", "-c", ". .venv/bin/activate && petal airflow stop-db"],
            cwd=work, env=env, capture_output=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 0, f"{block}\n---\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    papers = len((SHARED_DATA_DIR / "labelled_papers.jsonl").read_text().splitlines())
    predictions = (work / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(predictions) == papers and all("labels" in json.loads(p) for p in predictions)
    assert (work / ".petal" / "my-model" / "model.tar.gz").is_file()
    assert (work / "labels.jsonl").is_file() and (work / "review.jsonl").is_file()
    assert not (work / "rejects.jsonl").exists() or not (work / "rejects.jsonl").read_text()
    assert "promoted" in result.stdout or "production" in result.stdout, result.stdout[-2000:]
