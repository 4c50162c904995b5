"""Where the sagemaker backend puts things in its bucket, in one place.

    petal/models/<version>/model.tar.gz        a model artefact, uploaded once per version
    petal/runs/<dag>/<run digest>/input/...    a labelling run's staged papers
    petal/runs/<dag>/<run digest>/output/...   its batch transform output
    petal/training/<dag>/<run digest>/train/   a training run's `train` channel
    petal/training/<dag>/<run digest>/output/  its training job output

`<dag>/<run digest>` is the run key (`names.run_key`), also the local workspace.
"""

from __future__ import annotations

ROOT = "petal"


def model_key(version: str) -> str:
    return f"{ROOT}/models/{version}/model.tar.gz"


def labelling_prefix(run_key: str) -> str:
    """Everything one labelling run stages; its cleanup deletes this prefix."""
    return f"{ROOT}/runs/{run_key}"


def training_prefix(run_key: str) -> str:
    """Everything one training run stages; its cleanup deletes this prefix."""
    return f"{ROOT}/training/{run_key}"


def uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"
