"""Model version names have one rule on every path: CLI, store, database, DAG Params."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.store.connection import connect
from petal_labeller.store.models import register_model_version
from petal_labeller.store.unit import StoreError
from petal_labeller.versions import VersionNameError, check_version

BAD = ["../../escaped", "a/b", "..", ".hidden", "-flag", "", "a\nb", "v 1", "x" * 64, "é1"]
GOOD = ["v1", "tiny", "v20261127-1a2b3c4d5e6f", "cand_2.1", "x" * 63]


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass_unchanged(name):
    assert check_version(name) == name


@pytest.mark.parametrize("name", [*BAD, None, 7])
def test_bad_names_are_refused_saying_what_is_allowed(name):
    with pytest.raises(VersionNameError, match="letters, digits"):
        check_version(name)


def test_register_with_a_traversing_version_writes_nothing_anywhere(
    labelling_database, tiny_model_tar, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    monkeypatch.setenv("PETAL_HOME", str(home))
    args = ["--database-url", labelling_database, "model", "register", str(tiny_model_tar)]
    for bad in ("../../escaped", "a\nb", "x" * 300):
        result = CliRunner().invoke(main, [*args, "--version", bad])
        assert result.exit_code == 2, result.output
        assert "letters, digits" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.rglob("escaped")) and not home.exists()


def test_the_store_and_the_database_both_refuse_a_bad_version(migrated_database_url):
    with closing(connect(migrated_database_url)) as conn:
        with pytest.raises(StoreError, match="letters, digits"):
            register_model_version(conn, "../x", base_model="m", artefact_uri="file:///x")
        # A writer that skips the library (psql, another tool) meets migration 0006's CHECK.
        with pytest.raises(psycopg2.errors.CheckViolation), conn.cursor() as cur:
            cur.execute(
                "INSERT INTO model_versions (version, base_model, artefact_uri) "
                "VALUES ('../x', 'm', 'file:///x')"
            )


def test_the_trigger_forms_refuse_a_bad_version_before_a_run_starts():
    from airflow.sdk.exceptions import ParamValidationError

    from petal_labeller.airflow.params import run_params
    from petal_labeller.airflow.training.flow import training_params

    for params in (run_params(), training_params()):
        assert params["model_version"].resolve("v2") == "v2"
        assert params["model_version"].resolve(None) is None
        with pytest.raises(ParamValidationError):
            params["model_version"].resolve("../../escaped")


def test_the_rule_is_the_same_text_everywhere():
    from petal_labeller.versions import VERSION_PATTERN

    migration = Path(__file__).parent.parent / "petal_labeller/store/migrations"
    assert VERSION_PATTERN in (migration / "0006_version_names.sql").read_text()
