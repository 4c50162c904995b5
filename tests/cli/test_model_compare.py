"""`petal model compare`: per-metric gain with its interval and the churn, from real models."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.config import SHARED_DATA_DIR
from tests.fixtures.model import TINY_PAPERS, tiny_config


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> str:
    """Real papers the tiny models were not trained on."""
    lines = (SHARED_DATA_DIR / "labelled_papers.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path_factory.mktemp("heldout") / "heldout.jsonl"
    path.write_text("\n".join(lines[TINY_PAPERS : TINY_PAPERS + 40]) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def other_tiny_tar(tmp_path_factory, tiny_training_data):
    """Another real tiny model: the same papers, texts cut at 16 tokens."""
    from petal_labeller.model.train import train_artefact

    papers, taxonomy = tiny_training_data
    out = tmp_path_factory.mktemp("other-tiny")
    return train_artefact(papers, taxonomy, out, tiny_config(max_length=16), progress=False)


def _petal(*args: str, code: int = 0, database_url: str | None = None):
    prefix = ["--database-url", database_url] if database_url else []
    result = CliRunner().invoke(main, [*prefix, "model", "compare", *args])
    assert result.exit_code == code, result.output
    return result


def test_a_model_against_itself_gains_nothing_and_changes_nothing(tiny_model_tar, heldout):
    result = _petal(str(tiny_model_tar), "--against", str(tiny_model_tar), "--papers", heldout,
                    "--json")  # fmt: skip
    report = json.loads(result.stdout)
    assert report["papers"] == 40 and report["resamples"] == 2000
    assert set(report["gains"]) == {"micro_F1", "P@1", "P@3", "nDCG@3"}
    for gain in report["gains"].values():
        assert gain["gain"] == 0 and gain["low"] <= 0 <= gain["high"]
    assert report["heldout_churn"]["changed"] == 0 and report["store_churn"] is None


@pytest.mark.slow  # trains a second tiny model
def test_another_model_gets_intervals_around_its_gains_and_its_churn(
    tiny_model_tar, other_tiny_tar, heldout
):
    args = (str(other_tiny_tar), "--against", str(tiny_model_tar), "--papers", heldout)
    report = json.loads(_petal(*args, "--json").stdout)
    assert any(gain["gain"] != 0 for gain in report["gains"].values())
    for gain in report["gains"].values():
        assert gain["low"] <= gain["gain"] <= gain["high"] and gain["low"] < gain["high"]
    churn = report["heldout_churn"]
    assert 0 < churn["changed"] <= 40 and churn["labels_added"] + churn["labels_removed"] > 0
    text = _petal(*args).stdout
    assert "95% [" in text and f"churn (held-out): {churn['changed']} of 40 papers" in text


def test_against_the_production_version_by_name(
    db_conn, migrated_database_url, tiny_model_tar, heldout
):
    from petal_labeller.store.models import register_model_version

    register_model_version(
        db_conn, "v1", base_model="t", artefact_uri=str(tiny_model_tar), promote=True
    )
    report = json.loads(
        _petal(str(tiny_model_tar), "--papers", heldout, "--json",
               database_url=migrated_database_url).stdout
    )  # fmt: skip
    assert report["against"] == "v1" and report["gains"]["P@1"]["gain"] == 0
    # v1 has labelled nothing in the store: no store churn to report
    assert report["store_churn"] is None
    unknown = _petal(str(tiny_model_tar), "--against", "v9", "--papers", heldout, code=2,
                     database_url=migrated_database_url)  # fmt: skip
    assert "'v9': no such file and no registered model version" in unknown.output


def test_unusable_input_is_one_error_and_exit_2(tiny_model_tar, heldout, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"title": "A", "labels": ["no-such-label"]}) + "\n")
    result = _petal(str(tiny_model_tar), "--against", str(tiny_model_tar), "--papers", str(bad),
                    code=2)  # fmt: skip
    assert "no-such-label" in result.output and "Traceback" not in result.output
    not_a_model = _petal(heldout, "--against", str(tiny_model_tar), "--papers", heldout, code=2)
    assert "Error:" in not_a_model.output and "Traceback" not in not_a_model.output
    missing = _petal(str(tmp_path / "none.tar.gz"), "--against", str(tiny_model_tar),
                     "--papers", heldout, code=2)  # fmt: skip
    assert "no such file" in missing.output
