"""`pip install petal-labeller` alone: the store's commands work, the model's name their extra."""

from __future__ import annotations

import subprocess

import pytest

from petal_labeller.config import SHARED_DATA_DIR
from tests.fixtures.packaging import venv_env

pytestmark = pytest.mark.slow


def _petal(bin_dir, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir / "petal"), *args],
        cwd=cwd, env=venv_env(bin_dir), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_core_runs_the_store_commands_and_names_local_for_the_model(
    core_venv, migrated_database_url, tmp_path
):
    papers = tmp_path / "papers.jsonl"
    lines = (SHARED_DATA_DIR / "labelled_papers.jsonl").read_text(encoding="utf-8").splitlines()
    papers.write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    taxonomy = str(SHARED_DATA_DIR / "taxonomy.json")

    for args in (["taxonomy", "load", taxonomy], ["papers", "import", str(papers)], ["stats"]):
        result = _petal(core_venv, *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert "papers:                  5" in result.stdout

    train = ["model", "train", "--papers", str(papers), "--taxonomy", taxonomy]
    result = _petal(core_venv, *train, "--output", str(tmp_path / "model"), cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("error: this command needs petal-labeller's 'local' extra (no module ")
    assert line.endswith(": pip install 'petal-labeller[local]' -c requirements.txt")
