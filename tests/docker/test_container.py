"""The /opt/ml -> SM_* mapping that the image's `train` command relies on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from petal_labeller.runtime import handlers as inference
from petal_labeller.sagemaker.container import (
    ContainerConfigError,
    OptMl,
    channels,
    read_hyperparameters,
    training_environment,
)

REPO = Path(__file__).resolve().parents[2]


def make_tree(base: Path, hyperparameters: dict | None = None, channel_names=("train",)) -> OptMl:
    """A fake /opt/ml as SageMaker lays it out for a training job."""
    opt_ml = OptMl(base)
    opt_ml.config_dir.mkdir(parents=True)
    for name in channel_names:
        (opt_ml.data_dir / name).mkdir(parents=True)
    if hyperparameters is not None:
        (opt_ml.config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    return opt_ml


def test_base_dir_defaults_to_opt_ml_and_moves_with_sagemaker_base_dir(tmp_path):
    assert OptMl.from_environ({}).base == Path("/opt/ml")
    assert OptMl.from_environ({"SAGEMAKER_BASE_DIR": str(tmp_path)}).base == tmp_path


def test_hyperparameters_reach_the_entry_point_as_sagemaker_wrote_them(tmp_path):
    """Strings stay strings: the entry point converts each by its config field's type."""
    written = {"max_steps": "3", "version": "2026.11", "include_venue": "false"}
    opt_ml = make_tree(tmp_path, written)
    assert read_hyperparameters(opt_ml) == written
    env = training_environment(opt_ml, {})
    assert json.loads(env["SM_HPS"]) == written
    assert env["SM_HP_VERSION"] == "2026.11"


def test_no_hyperparameters_file_means_none(tmp_path):
    assert read_hyperparameters(make_tree(tmp_path)) == {}


def test_environment_names_every_sagemaker_path(tmp_path):
    opt_ml = make_tree(tmp_path, {"epochs": "2"}, channel_names=("train", "validation-set"))
    env = training_environment(opt_ml, {})
    assert env["SM_MODEL_DIR"] == str(tmp_path / "model")
    assert env["SM_OUTPUT_DATA_DIR"] == str(tmp_path / "output" / "data")
    assert env["SM_OUTPUT_DIR"] == str(tmp_path / "output")
    assert env["SM_INPUT_CONFIG_DIR"] == str(tmp_path / "input" / "config")
    assert env["SM_CHANNEL_TRAIN"] == str(tmp_path / "input" / "data" / "train")
    assert env["SM_CHANNEL_VALIDATION_SET"] == str(tmp_path / "input" / "data" / "validation-set")
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation-set"]
    assert json.loads(env["SM_HPS"]) == {"epochs": "2"}
    assert env["SM_HP_EPOCHS"] == "2"


def test_variables_already_set_win(tmp_path):
    opt_ml = make_tree(tmp_path, {"epochs": "2"})
    env = training_environment(opt_ml, {"SM_MODEL_DIR": "/elsewhere", "PATH": "/bin"})
    assert env["SM_MODEL_DIR"] == "/elsewhere"
    assert env["PATH"] == "/bin"
    assert env["SM_CHANNEL_TRAIN"].endswith("train")


def test_channels_follow_inputdataconfig_when_sagemaker_writes_one(tmp_path):
    opt_ml = make_tree(tmp_path, channel_names=("train", "stray"))
    (opt_ml.config_dir / "inputdataconfig.json").write_text(
        json.dumps({"train": {"TrainingInputMode": "File"}})
    )
    assert channels(opt_ml) == {"train": opt_ml.data_dir / "train"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{not json", "not valid JSON"), ('["a list"]', "expected a JSON object, got list")],
)
def test_unreadable_hyperparameters_name_the_file(tmp_path, content, expected):
    opt_ml = make_tree(tmp_path)
    (opt_ml.config_dir / "hyperparameters.json").write_text(content)
    with pytest.raises(ContainerConfigError, match=expected) as error:
        read_hyperparameters(opt_ml)
    assert "hyperparameters.json" in str(error.value)


def run_train_command(base: Path, **extra_env: str):
    """The image's `train` executable, run natively on a fake /opt/ml tree."""
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        # `python` in the script must be this interpreter, as it is in the image.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **extra_env,
    }
    for name in [name for name in env if name.startswith("SM_")]:
        del env[name]  # the script must find everything from the tree alone
    return subprocess.run(
        [str(REPO / "docker" / "sagemaker" / "bin" / "train")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_command_reports_unreadable_config_in_failure_file(tmp_path):
    opt_ml = make_tree(tmp_path)
    (opt_ml.config_dir / "hyperparameters.json").write_text("{not json")
    result = run_train_command(tmp_path)
    assert result.returncode == 2
    failure = opt_ml.failure_file.read_text()
    assert "hyperparameters.json" in failure
    assert "not valid JSON" in failure


def fake_training_job(base: Path, papers: Path, taxonomy: Path) -> OptMl:
    """/opt/ml for a tiny SageMaker training job: the `train` channel and string hyperparameters."""
    opt_ml = make_tree(
        base,
        # As SageMaker sends them: every value a string.
        {"max_length": "48", "knn_k": "3", "tune_folds": "2"},
    )
    shutil.copy(papers, opt_ml.data_dir / "train" / "papers.jsonl")
    shutil.copy(taxonomy, opt_ml.data_dir / "train" / "taxonomy.json")
    return opt_ml


@pytest.mark.slow
def test_train_command_leaves_a_servable_model_in_opt_ml_model(tmp_path, tiny_training_data):
    opt_ml = fake_training_job(tmp_path, *tiny_training_data)
    result = run_train_command(tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert not opt_ml.failure_file.exists()
    # SageMaker tars /opt/ml/model as model.tar.gz; serving loads that same folder.
    model = inference.model_fn(opt_ml.model_dir)
    [answer] = inference.predict_fn(
        inference.input_fn(b'{"title": "Gecko feet stick to walls", "paper_id": 1}\n'), model
    )
    assert answer["paper_id"] == 1 and answer["labels"]
    assert json.loads((opt_ml.model_dir / "labeller.json").read_text())["max_length"] == 48


@pytest.mark.slow
def test_a_failed_training_job_explains_itself_in_the_failure_file(tmp_path, tiny_training_data):
    opt_ml = fake_training_job(tmp_path, *tiny_training_data)
    (opt_ml.data_dir / "train" / "papers.jsonl").unlink()
    result = run_train_command(tmp_path)
    assert result.returncode != 0
    failure = opt_ml.failure_file.read_text()
    assert "papers.jsonl" in failure, failure
