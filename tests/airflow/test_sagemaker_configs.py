"""Names and request bodies handed to the provider's SageMaker operators."""

from __future__ import annotations

import re

from petal_labeller.airflow.aws import sagemaker_configs as configs
from petal_labeller.airflow.names import run_key, sagemaker_name

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
LONG_RUN_ID = "backfill__2026-11-02T00:00:00+00:00" + "x" * 200


def test_names_fit_sagemaker_and_differ_per_run_and_per_try():
    names = {
        sagemaker_name("transform", "petal_label_papers", run_id, try_number)
        for run_id in ("scheduled__2026-11-02T00:00:00+00:00", LONG_RUN_ID)
        for try_number in (1, 2)
    }
    assert len(names) == 4
    for name in names:
        assert SAGEMAKER_NAME.match(name), name
        assert len(name) <= 63


def test_names_are_stable_for_the_same_run_and_try():
    once = sagemaker_name("model", "dag", "run", 3)
    assert once == sagemaker_name("model", "dag", "run", "3")
    assert once.startswith("petal-model-") and once.endswith("-t3")


def test_a_long_kind_is_cut_but_keeps_run_and_try():
    name = sagemaker_name("k" * 100, "dag", "run", 12)
    assert len(name) == 63 and name.endswith("-t12")


def test_run_key_is_a_safe_relative_key():
    prefix = run_key("petal_label_papers", "manual__2026-11-02T00:00:00+00:00")
    assert re.fullmatch(r"petal-label-papers/[0-9a-f]{12}", prefix)


def test_transform_config_reads_jsonlines_line_by_line_in_multi_record_batches():
    config = configs.transform_config(
        "job", "model", "s3://b/in/papers.jsonl", "s3://b/out", "ml.m5.xlarge"
    )
    assert config["BatchStrategy"] == "MultiRecord"
    assert config["TransformInput"]["SplitType"] == "Line"
    assert config["TransformInput"]["ContentType"] == "application/jsonlines"
    assert config["TransformOutput"] == {
        "S3OutputPath": "s3://b/out",
        "Accept": "application/jsonlines",
        "AssembleWith": "Line",
    }
    assert config["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}


def test_model_config_runs_the_artefacts_inference_script():
    config = configs.model_config("m", "image:1", "s3://b/model.tar.gz", "arn:aws:iam::1:role/r")
    assert config["PrimaryContainer"]["ModelDataUrl"] == "s3://b/model.tar.gz"
    assert "SAGEMAKER_PROGRAM" not in config["PrimaryContainer"]["Environment"]  # image's code
    assert configs.delete_model_config("m") == {"ModelName": "m"}


def test_training_config_has_a_train_channel_and_string_hyperparameters():
    config = configs.training_config(
        "job", "image:1", "arn:r", "s3://b/train/", "s3://b/out/", "ml.g4dn.xlarge",
        {"epochs": 4, "preset": "default"},
    )  # fmt: skip
    assert config["InputDataConfig"][0]["ChannelName"] == "train"
    assert config["HyperParameters"] == {"epochs": "4", "preset": "default"}
    assert config["OutputDataConfig"] == {"S3OutputPath": "s3://b/out/"}


def test_transform_output_sits_next_to_the_output_prefix():
    key = configs.transform_output_key("petal/runs/x/output/", "petal/runs/x/input/papers.jsonl")
    assert key == "petal/runs/x/output/papers.jsonl.out"


def test_name_prefix_covers_every_try_of_one_run_only():
    from petal_labeller.airflow.names import sagemaker_name_prefix

    prefix = sagemaker_name_prefix("transform", "dag", "run")
    assert all(sagemaker_name("transform", "dag", "run", t).startswith(prefix) for t in (1, 9, 12))
    assert not sagemaker_name("transform", "dag", "other-run", 1).startswith(prefix)
    assert prefix.endswith("-t")
