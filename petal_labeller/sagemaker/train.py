"""Training entry point, identical in a SageMaker training job and on a local worker.

    python -m petal_labeller.sagemaker.train

SageMaker's contract: the training channel folder (SM_CHANNEL_TRAIN, default
/opt/ml/input/data/train) holds `papers.jsonl` and `taxonomy.json`; the
hyperparameters come as SM_HPS (JSON) or /opt/ml/input/config/hyperparameters.json
(every value a string); the artefact's files go to SM_MODEL_DIR (SageMaker tars
that folder into model.tar.gz itself) and the evaluation report to
SM_OUTPUT_DATA_DIR. Locally the same variables point at plain folders.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("petal_labeller.sagemaker.train")

DEFAULTS = {
    "SM_MODEL_DIR": "/opt/ml/model",
    "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train",
    "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
    "SM_INPUT_CONFIG_DIR": "/opt/ml/input/config",
}
PAPERS_FILE = "papers.jsonl"
TAXONOMY_FILE = "taxonomy.json"


def run(env: Mapping[str, str] | None = None) -> Path:
    """Train from the channel, leave the artefact's files in SM_MODEL_DIR; return that folder."""
    from petal_labeller.model.artefact import unpack
    from petal_labeller.model.config import from_hyperparameters
    from petal_labeller.model.train import train_artefact
    from petal_labeller.sagemaker.container import hyperparameters

    env = dict(os.environ if env is None else env)
    channel = Path(env.get("SM_CHANNEL_TRAIN", DEFAULTS["SM_CHANNEL_TRAIN"]))
    model_dir = Path(env.get("SM_MODEL_DIR", DEFAULTS["SM_MODEL_DIR"]))
    output_dir = Path(env.get("SM_OUTPUT_DATA_DIR", DEFAULTS["SM_OUTPUT_DATA_DIR"]))
    for name in (PAPERS_FILE, TAXONOMY_FILE):
        if not (channel / name).is_file():
            raise FileNotFoundError(f"training channel {channel}: missing file {name}")
    hps = dict(hyperparameters(env))
    version = hps.pop("version", None)
    config = from_hyperparameters(hps)
    log.info("training with %s", config)
    with tempfile.TemporaryDirectory(prefix="petal-train-") as tmp:
        tar_path = train_artefact(
            channel / PAPERS_FILE,
            channel / TAXONOMY_FILE,
            tmp,
            config,
            version=version,
            progress=sys.stderr.isatty(),
        )
        # SageMaker packs SM_MODEL_DIR itself: leave the artefact's files there.
        model_dir.mkdir(parents=True, exist_ok=True)
        unpack(tar_path, model_dir)
        evaluation = Path(tmp) / "evaluation"
        if evaluation.is_dir():
            shutil.copytree(evaluation, output_dir / "evaluation", dirs_exist_ok=True)
    log.info("model files in %s, evaluation in %s", model_dir, output_dir)
    return model_dir


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        run()
    except (FileNotFoundError, ValueError) as exc:
        # SageMaker shows /opt/ml/output/failure as the job's FailureReason.
        log.error("training failed: %s", exc)
        output = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
        if output.is_dir():
            (output / "failure").write_text(str(exc)[:1024], encoding="utf-8")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
