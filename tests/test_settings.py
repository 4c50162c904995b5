"""Settings from the environment: bounded integers, read when used, one clear line when bad."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.config import SettingError, env_int


def test_an_unset_or_blank_setting_is_its_default(monkeypatch):
    monkeypatch.delenv("PETAL_TEST_SETTING", raising=False)
    assert env_int("PETAL_TEST_SETTING", 7, minimum=1, maximum=10) == 7
    monkeypatch.setenv("PETAL_TEST_SETTING", "  ")
    assert env_int("PETAL_TEST_SETTING", 7, minimum=1, maximum=10) == 7
    monkeypatch.setenv("PETAL_TEST_SETTING", " 10 ")
    assert env_int("PETAL_TEST_SETTING", 7, minimum=1, maximum=10) == 10


@pytest.mark.parametrize("text", ["abc", "0", "-5", "11", "1e3", "3.5", "9" * 5000, "٣"])
def test_anything_outside_the_range_names_the_setting_and_the_range(monkeypatch, text):
    monkeypatch.setenv("PETAL_TEST_SETTING", text)
    with pytest.raises(SettingError) as caught:
        env_int("PETAL_TEST_SETTING", 7, minimum=1, maximum=10)
    message = str(caught.value)
    assert message.startswith("PETAL_TEST_SETTING=") and "from 1 to 10" in message
    assert len(message) < 120  # a huge value is never echoed whole


def test_petal_model_predict_with_a_bad_artefact_cap_exits_2_with_one_line(
    monkeypatch, tmp_path, tiny_model_tar
):
    monkeypatch.setenv("PETAL_ARTEFACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PETAL_ARTEFACT_MAX_MB", "lots")
    papers = tmp_path / "papers.jsonl"
    papers.write_text('{"title": "Shark skin"}\n')
    args = ["model", "predict", "--model", str(tiny_model_tar), "--papers", str(papers)]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 2, result.output
    assert "PETAL_ARTEFACT_MAX_MB='lots' must be" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out.jsonl").exists()


def test_the_sagemaker_handler_refuses_a_zero_batch_size(monkeypatch, tmp_path, tiny_model_tar):
    """SageMaker and serve size batches from the environment; 0 would never finish a batch."""
    from petal_labeller.model.artefact import unpack
    from petal_labeller.runtime.handlers import model_fn

    unpack(tiny_model_tar, tmp_path / "model")
    monkeypatch.setenv("PETAL_INFERENCE_BATCH_SIZE", "0")
    with pytest.raises(SettingError, match="PETAL_INFERENCE_BATCH_SIZE='0' must be"):
        model_fn(tmp_path / "model")
