"""Batch inference on the worker: the local backend of the labelling run.

It runs the installed package's runtime handlers (`predict_file` over
`petal_labeller.runtime.handlers`; the artefact is data only), the same code the
SageMaker image runs for batch transform, so both backends give the same labels
for the same papers. Progress goes to the log at INFO (papers done, rate, ETA); the
libraries' own progress bars are switched off, since a task log shows anything
written to stderr as an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: At most one progress line per this many seconds (and one at the end).
PROGRESS_EVERY_S = 10.0


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


def artefact_on_this_worker(artefact_uri: str) -> Path:
    """The artefact as a file here: a local path as it is, an s3:// one (a model
    registered into the object-storage workspace) fetched once to this worker."""
    if "://" in artefact_uri and not artefact_uri.startswith("file://"):
        from petal_labeller.pipeline.workspace import fetch_artefact

        return fetch_artefact(artefact_uri)
    return local_path(artefact_uri)


def progress_logger(
    total: int | None,
    every_s: float = PROGRESS_EVERY_S,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[int], None]:
    """A `progress(done)` callback logging `done/total papers [elapsed<ETA, rate]` at INFO."""
    from tqdm import tqdm

    started = clock()
    last = [started - every_s]

    def progress(done: int) -> None:
        now = clock()
        if now - last[0] < every_s and done != total:
            return
        last[0] = now
        meter = tqdm.format_meter(done, total, now - started, unit=" papers", ncols=0)
        log.info("Labelled %s", meter)

    return progress


def quiet_progress_bars() -> None:
    """No tqdm bars from transformers / huggingface_hub while loading a model."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # a model without transformers (the TF-IDF baseline) has no bars
        pass


def infer_local(
    artefact_uri: str,
    input_path: Path,
    output_path: Path,
    batch_size: int = 32,
    total: int | None = None,
    model: Any = None,
) -> Path:
    """Label every line of `input_path` into `output_path`, one output line per input line.

    `model` may be an already loaded model (skips loading the artefact).
    """
    from petal_labeller.extras import require_extra

    require_extra("local", "labelling on this machine")
    # Heavy import (torch, transformers) inside the function: DAG parsing stays light.
    from petal_labeller.model.predict import predict_file

    quiet_progress_bars()
    artefact = artefact_on_this_worker(artefact_uri)
    if model is None:
        from petal_labeller.runtime.load import load_model

        log.info("Loading model %s", artefact.name)
        # Unpacked and verified once per worker and version, then reused (runtime/cache.py).
        model = load_model(artefact, batch_size=batch_size, cache=True)
    predict_file(
        artefact,
        input_path,
        output_path,
        batch_size=batch_size,
        progress=progress_logger(total),
        model=model,
    )
    return output_path
