"""Batch inference on the worker: the local backend of the labelling DAG.

It runs the model artefact's own inference functions (`predict_file` over
`petal_labeller.runtime.handlers`), the code SageMaker's batch transform runs,
so both backends give the same labels for the same papers.
"""

from __future__ import annotations

from pathlib import Path


def local_path(artefact_uri: str) -> Path:
    """A model artefact on this machine: a plain path or a file:// URI."""
    if artefact_uri.startswith("file://"):
        return Path(artefact_uri.removeprefix("file://"))
    if "://" in artefact_uri:
        raise ValueError(
            f"model artefact {artefact_uri!r} is not on this machine; the local backend "
            "needs a file path (the sagemaker backend reads s3:// artefacts)"
        )
    return Path(artefact_uri)


def infer_local(
    artefact_uri: str, input_path: Path, output_path: Path, batch_size: int = 32
) -> Path:
    """Label every line of `input_path` into `output_path`, one output line per input line."""
    # Heavy import (torch, transformers) inside the function: DAG parsing stays light.
    from petal_labeller.model.predict import predict_file

    predict_file(local_path(artefact_uri), input_path, output_path, batch_size=batch_size)
    return output_path
