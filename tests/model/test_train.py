"""Training end to end on a few real papers: save/load, SageMaker entry point, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.model.data import load_labelled
from petal_labeller.model.train import fit, save_model
from petal_labeller.runtime import handlers as inference
from petal_labeller.runtime.validate import RUNTIME_FORMAT
from petal_labeller.sagemaker.train import run as sagemaker_train
from petal_labeller.taxonomy import Taxonomy
from tests.fixtures.model import read_jsonl, tiny_config

pytestmark = pytest.mark.slow


def test_fine_tuned_model_scores_identically_after_save_and_load(tiny_training_data, tmp_path):
    papers_path, taxonomy_path = tiny_training_data
    taxonomy = Taxonomy.load(taxonomy_path)
    papers = load_labelled(papers_path, taxonomy)
    # A research recipe (the old blend with the encoder trained too) through the same
    # recipe interface as the production one.
    from benchmarks.ablation.blend import preset as research_preset

    config = research_preset(
        "finetune", max_length=48, batch_size=8, epochs=2, max_steps=3, tune_folds=2
    )
    trained = fit(papers, taxonomy, config, progress=False)
    assert trained.history and trained.history[0]["train_loss"] > 0
    save_model(trained, tmp_path / "model", {"version": "test"})

    loaded = inference.model_fn(tmp_path / "model", precision="fp32")

    records = [p.record for p in papers]
    np.testing.assert_allclose(loaded.score(records), trained.model.score(records), atol=1e-6)
    for before, after in zip(trained.model.predict(records), loaded.predict(records), strict=True):
        assert after["labels"] == before["labels"]
        assert after["scores"] == pytest.approx(before["scores"], abs=2e-6)


def test_sagemaker_entry_point_honours_sm_variables(tiny_training_data, tmp_path):
    papers_path, taxonomy_path = tiny_training_data
    channel = tmp_path / "input/data/train"
    channel.mkdir(parents=True)
    (channel / "papers.jsonl").write_bytes(papers_path.read_bytes())
    (channel / "taxonomy.json").write_bytes(taxonomy_path.read_bytes())
    hps = {k: str(v) for k, v in tiny_config().to_dict().items() if k != "base_model"}
    env = {
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
        "SM_HPS": json.dumps({**hps, "version": "sm-test"}),
    }

    model_dir = sagemaker_train(env)

    # Data only: the installed runtime labels with it, and runtime.json names its format.
    assert not (model_dir / "code").exists()
    assert json.loads((model_dir / "runtime.json").read_text())["format"] == RUNTIME_FORMAT
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["version"] == "sm-test" and len(card["training_data"]["papers_sha256"]) == 64
    assert (tmp_path / "output/evaluation/report.md").is_file()
    assert inference.model_fn(model_dir).predict([{"title": "Owl wings fly silently"}])


def test_sagemaker_entry_point_names_a_missing_channel_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing file taxonomy\.json"):
        (tmp_path / "papers.jsonl").write_text("")
        sagemaker_train({"SM_CHANNEL_TRAIN": str(tmp_path), "SM_MODEL_DIR": str(tmp_path / "m")})


def test_cli_train_predict_evaluate(tiny_training_data, tmp_path):
    papers_path, taxonomy_path = tiny_training_data
    runner = CliRunner()
    trained = runner.invoke(
        main,
        ["model", "train", "--papers", str(papers_path), "--taxonomy", str(taxonomy_path),
         "--output", str(tmp_path / "out"),
         "--set", "max_length=32", "--set", "tune_folds=2"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    tar = tmp_path / "out/model.tar.gz"
    assert tar.is_file() and (tmp_path / "out/evaluation/per_label_f1.png").is_file()

    unlabelled = tmp_path / "in.jsonl"
    unlabelled.write_text('{"title": "Termite mounds ventilate"}\n{"title": 1}\n')
    predicted = runner.invoke(
        main,
        ["model", "predict", "--model", str(tar), "--papers", str(unlabelled),
         "--output", str(tmp_path / "out.jsonl")],
    )  # fmt: skip
    assert predicted.exit_code == 1, "a bad line is reported with exit code 1"
    assert "line 2: field 'title'" in predicted.output
    lines = read_jsonl(tmp_path / "out.jsonl")
    assert lines[0]["labels"] and lines[1]["line"] == 2

    evaluated = runner.invoke(
        main, ["model", "evaluate", "--model", str(tar), "--papers", str(papers_path),
               "--baseline-train", str(papers_path), "--report", str(tmp_path / "report")],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    rows = json.loads(evaluated.output[evaluated.output.index("{") :])
    assert set(rows) == {"model", "tfidf-svm"} and 0 <= rows["model"]["P@1"] <= 1
    assert (tmp_path / "report/report.md").is_file()


def test_cli_refuses_a_wrong_preset(tiny_training_data, tmp_path):
    papers_path, taxonomy_path = tiny_training_data
    result = CliRunner().invoke(
        main,
        ["model", "train", "--papers", str(papers_path), "--taxonomy", str(taxonomy_path),
         "--output", str(tmp_path), "--preset", "best"],
    )  # fmt: skip
    assert result.exit_code == 2 and "unknown preset 'best'" in result.output
