"""Config presets and SageMaker hyperparameter parsing."""

from __future__ import annotations

import json

import pytest

from petal_labeller.model.config import ConfigError, from_hyperparameters, preset
from petal_labeller.model.data import TrainingDataError, load_labelled
from petal_labeller.taxonomy import Taxonomy


def test_v01_preset_is_the_original_recipe():
    config = preset("v0.1")
    assert (config.pooling, config.body_lr, config.head_lr) == ("pooler", 2e-5, 2e-5)
    assert (config.batch_size, config.epochs, config.loss) == (32, 4, "bce")
    assert config.scorer_names() == ["head"]
    assert config.max_length == 256 and config.patience == 0


def test_default_preset_is_the_measured_stack():
    config = preset()
    assert config.combiner == "stack" and config.tfidf_char and config.tune_folds == 5
    assert config.scorer_names() == ["tfidf", "knn", "zeroshot", "venue"]
    assert (config.knn_k, config.knn_temperature) == (20, 0.1)
    assert config.pooling == "mean" and config.base_model.endswith("model")


def test_blend_preset_is_the_previous_default():
    config = preset("blend")
    assert config.combiner == "blend" and config.scorer_names() == ["head", "knn", "tfidf"]
    assert config.pooling == "mean" and config.loss == "asl" and config.patience > 0
    assert config.head_lr > config.body_lr and not config.tfidf_char


def test_hyperparameters_arrive_as_strings():
    config = from_hyperparameters(
        {"preset": '"v0.1"', "epochs": "2", "knn-k": "7", "include_venue": "false"}
    )
    assert config.preset == "v0.1" and config.epochs == 2 and config.knn_k == 7
    assert config.include_venue is False and config.pooling == "pooler"
    blend = from_hyperparameters(
        {"preset": "blend", "scorers": "knn,tfidf", "scorer_weights": "knn=3,tfidf=1"}
    )
    assert blend.fixed_weights() == {"knn": 0.75, "tfidf": 0.25}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"learning_rate": "1"}, "unknown hyperparameter"),
        ({"loss": "hinge"}, "loss must be one of"),
        ({"preset": "v9"}, "unknown preset"),
        ({"scorers": "head,svm"}, "scorers from"),
        (
            {"preset": "blend", "scorers": "head,knn", "scorer_weights": "head=1"},
            "scorer_weights",
        ),
        ({"preset": "blend", "scorers": "head,knn,zeroshot"}, "scorers from"),
        ({"scorers": "head,knn", "combiner": "stack"}, "the stack's scorers from"),
        ({"tune_folds": "1"}, "the stack needs tune_folds >= 2"),
        ({"combiner": "vote"}, "combiner must be one of"),
    ],
)
def test_bad_hyperparameters_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        from_hyperparameters(values)


TAXONOMY = Taxonomy.from_records(
    [
        {"id": "move", "name": "Move", "level": 1, "parent": None},
        {"id": "swim", "name": "Swim", "level": 2, "parent": "move"},
    ]
)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            {"title": "Fish", "labels": ["fly"]},
            r"line 2: field 'labels' has unknown label ids \['fly'\]",
        ),
        ({"title": "Fish", "labels": "swim"}, "line 2: field 'labels' must be a list"),
        ({"title": 3, "labels": ["swim"]}, "line 2: field 'title' must be a string"),
        ({"title": "", "abstract": None, "labels": ["swim"]}, "line 2: fields 'title' and"),
    ],
)
def test_bad_training_records_are_named_by_line_and_field(tmp_path, line, message):
    path = tmp_path / "papers.jsonl"
    good = {"title": "Tuna", "labels": ["swim"]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(TrainingDataError, match=message):
        load_labelled(path, TAXONOMY)
    assert len(load_labelled(path, TAXONOMY, strict=False)) == 1
