"""Batch prediction over a JSONL file with exactly the SageMaker handler functions.

This is the local backend's batch transform: `model_fn` once, then
`input_fn` -> `predict_fn` -> `output_fn` over chunks of lines, as SageMaker
would call them with `SplitType=Line`. Bad lines become error lines with their
file line number; the others are still labelled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petal_labeller import config

log = logging.getLogger(__name__)

#: Lines handed to input_fn at once: one SageMaker mini-batch.
CHUNK_LINES = 256


@dataclass
class PredictSummary:
    """What a batch prediction did: counts, the bad lines, where the output went."""

    input_path: str
    output_path: str
    lines: int = 0
    labelled: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    precision: str = "fp32"

    @property
    def failed(self) -> int:
        return len(self.errors)


def _chunks(path: Path, size: int):
    """(first line number, bytes) blocks of whole lines, so line numbers stay file-wide."""
    with open(path, "rb") as handle:
        first, block = 1, []
        for line in handle:
            block.append(line if line.endswith(b"\n") else line + b"\n")
            if len(block) == size:
                yield first, b"".join(block)
                first, block = first + size, []
        if block:
            yield first, b"".join(block)


def predict_file(
    model_tar_or_dir: str | Path,
    in_jsonl: str | Path,
    out_jsonl: str | Path,
    batch_size: int = 32,
    *,
    precision: str | None = None,
    model: Any = None,
    progress: Callable[[int], None] | None = None,
) -> PredictSummary:
    """Label every paper in `in_jsonl`; write one line per input line to `out_jsonl`.

    `model` may be an already loaded model (from `model_fn`) to skip loading;
    `progress` is called with the lines done so far after each chunk.
    """
    from petal_labeller.runtime.handlers import input_fn, output_fn, predict_fn
    from petal_labeller.runtime.jsonlines import JSONLINES

    in_path, out_path = Path(in_jsonl), Path(out_jsonl)
    # Checked here too: with `model` given, a negative size made range() skip the encoder.
    batch_size = config.bounded("PETAL_INFERENCE_BATCH_SIZE", batch_size, "batch size")
    if model is None:
        from petal_labeller.pipeline.infer import quiet_progress_bars

        quiet_progress_bars()  # a task log shows stderr as ERROR (petal_train_model's evaluate)
        from petal_labeller.runtime.load import load_model

        model = load_model(model_tar_or_dir, precision=precision, batch_size=batch_size)
    summary = PredictSummary(str(in_path), str(out_path), precision=model.precision)
    started = time.monotonic()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as out:
        for first_line, body in _chunks(in_path, CHUNK_LINES):
            items = input_fn(body, JSONLINES, first_line=first_line)
            prediction = predict_fn(items, model)
            out.write(output_fn(prediction, JSONLINES))
            summary.lines += len(prediction)
            for line in prediction:
                if "error" in line:
                    summary.errors.append(line)
                    log.warning("%s line %d: %s", in_path, line["line"], line["error"])
                else:
                    summary.labelled += 1
            if progress is not None:
                progress(summary.lines)
    partial.replace(out_path)
    summary.seconds = time.monotonic() - started
    log.info(
        "labelled %d of %d papers from %s in %.1f s (%d bad lines)",
        summary.labelled, summary.lines, in_path, summary.seconds, summary.failed,
    )  # fmt: skip
    return summary
