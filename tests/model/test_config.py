"""Config presets and SageMaker hyperparameter parsing."""

from __future__ import annotations

import json

import pytest

from petal_labeller.model.config import ConfigError, TrainConfig, from_hyperparameters, preset
from petal_labeller.model.data import TrainingDataError, load_labelled
from petal_labeller.taxonomy import Taxonomy


def test_bare_defaults_are_the_production_recipe():
    config = TrainConfig()
    assert config == preset("default")
    assert config.recipe == "stack" and config.tfidf_char and config.tune_folds == 5
    assert config.scorer_names() == ["tfidf", "knn", "zeroshot", "venue"]
    assert (config.knn_k, config.knn_temperature, config.tfidf_c) == (20, 0.1, 0.5)
    assert config.pooling == "mean" and not config.include_venue
    assert config.base_model.endswith("model")


def test_hyperparameters_arrive_as_strings():
    config = from_hyperparameters(
        {"preset": '"word-only"', "knn-k": "7", "include_venue": "false", "tfidf_c": "0.25"}
    )
    assert config.preset == "word-only" and not config.tfidf_char
    assert (config.knn_k, config.tfidf_c, config.include_venue) == (7, 0.25, False)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"learning_rate": "1"}, "unknown hyperparameter"),
        ({"epochs": "4"}, "unknown hyperparameter"),  # the stack trains no epochs
        ({"preset": "v9"}, "unknown preset"),
        ({"scorers": "head,knn"}, "scorers from"),
        ({"tune_folds": "1"}, "the stack needs tune_folds >= 2"),
        ({"knn_k": "many"}, "knn_k must be a int"),
        ({"tfidf_c": "0"}, "tfidf_c and combiner_c must be > 0"),
    ],
)
def test_bad_hyperparameters_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        from_hyperparameters(values)


def test_the_recipe_table_names_each_recipe_and_refuses_others():
    from petal_labeller.model.recipes import RECIPES, recipe_for

    assert RECIPES["stack"] == "petal_labeller.model.stacking:STACK"
    assert type(recipe_for(TrainConfig())).__name__ == "StackRecipe"
    with pytest.raises(ConfigError, match="unknown recipe 'nonesuch'; choose one of stack"):
        recipe_for(TrainConfig(recipe="nonesuch"))


def test_research_recipes_register_behind_the_same_interface():
    from benchmarks.ablation.blend import BlendConfig
    from benchmarks.ablation.blend import preset as research_preset
    from petal_labeller.model.recipes import recipe_for

    config = research_preset("v0.1")
    assert isinstance(config, BlendConfig) and config.recipe == "blend"
    assert (config.pooling, config.body_lr, config.epochs, config.loss) == (
        "pooler",
        2e-5,
        4,
        "bce",
    )
    assert config.replace(epochs=2).epochs == 2
    recipe = recipe_for(config)
    assert all(callable(getattr(recipe, name)) for name in ("fit", "save", "load"))


def test_train_and_stacking_import_no_circle():
    """stacking.py (a recipe) never imports train.py (which runs recipes), and vice versa."""
    import ast
    from pathlib import Path

    import petal_labeller.model as package

    folder = Path(package.__file__).parent

    def imports(name: str) -> set[str]:
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "petal_labeller.model."
            ):
                found.add(node.module.rsplit(".", 1)[1])
        return found

    assert "train" not in imports("stacking") and "stacking" not in imports("train")
    assert "train" not in imports("recipes") and "stacking" not in imports("recipes")


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


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "line 2: not usable JSON: nested too deeply"),
        (b'{"title": "Fish", "labels": ["swim"]', "line 2: not valid JSON"),
        (b'{"title": "\xff", "labels": ["swim"]}', "line 2: not valid UTF-8"),
    ],
)
def test_undecodable_training_lines_are_that_lines_error(tmp_path, raw, message):
    path = tmp_path / "papers.jsonl"
    good = json.dumps({"title": "Tuna", "labels": ["swim"]}).encode()
    path.write_bytes(good + b"\n" + raw + b"\n" + good + b"\n")
    with pytest.raises(TrainingDataError, match=message):
        load_labelled(path, TAXONOMY)
    assert len(load_labelled(path, TAXONOMY, strict=False)) == 2


def test_the_demo_preset_is_the_same_recipe_cheaper_and_leaves_the_default_alone():
    demo, default = preset("demo"), preset("default")
    assert (demo.recipe, demo.scorer_names()) == (default.recipe, default.scorer_names())
    assert demo.max_length < default.max_length and demo.tune_folds < default.tune_folds
    assert demo.check_scan < default.check_scan and not demo.tfidf_char
    assert default == TrainConfig() and default.check_scan == 2000


# Issue 24 item 13: the library checks again what the training DAG's schema refuses.


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seed": "abc"}, "seed must be a int"),
        ({"tfidf_char": "no"}, "tfidf_char must be a bool"),
        ({"max_length": "100"}, "max_length must be a int"),
        ({"tune_folds": 10**9}, "tune_folds must be from 2 to 20"),
        ({"tune_folds": 1e9}, "tune_folds must be a int"),
        ({"seed": True}, "seed must be a int"),
        ({"knn_temperature": float("nan")}, "knn_temperature must be a float"),
        ({"base_model": "x" * 1000}, "base_model must be a str"),
    ],
)
def test_every_knob_is_typed_and_bounded(options, message):
    with pytest.raises(ConfigError, match=message):
        preset("default", **options)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tfidf_char": "maybe"}, "tfidf_char must be a bool"),
        ({"knn_k": "١٢"}, "knn_k must be a int"),
        ({"knn_k": "1_000"}, "knn_k must be a int"),
        ({"tfidf_c": "1_0.5"}, "tfidf_c must be a float"),
        ({"seed": "9" * 5000}, "seed must be a int"),
    ],
)
def test_hyperparameter_strings_are_ascii_and_flags_are_words_we_know(values, message):
    with pytest.raises(ConfigError, match=message) as refused:
        from_hyperparameters(values)
    assert len(str(refused.value)) < 100


def test_the_schema_and_the_check_agree_on_every_bound():
    from petal_labeller.model.config import BOUNDS, train_options_schema

    properties = train_options_schema()["properties"]
    assert "preset" not in properties and train_options_schema()["additionalProperties"] is False
    for name, (low, high) in BOUNDS.items():
        assert (properties[name]["minimum"], properties[name]["maximum"]) == (low, high)
        for value in (low, high):
            preset("default", **{name: value})
