"""The SageMaker bring-your-own-container contract, mapped onto our training entry point.

SageMaker starts a training container as `<image> train` and gives it only the
`/opt/ml` tree: channels in `input/data/<channel>`, hyperparameters (every value a
string) in `input/config/hyperparameters.json`, the model to leave in `model/`,
and a `output/failure` file to explain a failed job. The SM_* variables that
`python -m petal_labeller.sagemaker.train` reads are set by SageMaker's training
toolkit, which we do not ship (it adds a compiler toolchain and a second way to
run code); this module reads the tree and sets the same variables, so the entry
point sees one environment in SageMaker, under the local backend and in tests.
Variables already set win, so a caller can always override one.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The module SageMaker's `train` command runs, the same one the local backend runs.
TRAINING_MODULE = "petal_labeller.sagemaker.train"

#: SageMaker's fixed root; SAGEMAKER_BASE_DIR moves it (the toolkits' own name for it).
DEFAULT_BASE_DIR = Path("/opt/ml")  # config.SETTINGS["SAGEMAKER_BASE_DIR"]'s default

#: SageMaker truncates the failure reason it shows; keep the tail, where the error is.
FAILURE_MESSAGE_LIMIT = 1024


class ContainerConfigError(ValueError):
    """A file SageMaker wrote into /opt/ml cannot be read; the message names it."""


@dataclass(frozen=True)
class OptMl:
    """The paths of one SageMaker container tree."""

    base: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> OptMl:
        from petal_labeller import config  # the one settings table

        return cls(config.get("SAGEMAKER_BASE_DIR", environ))

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def data_dir(self) -> Path:
        return self.input_dir / "data"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ContainerConfigError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ContainerConfigError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_hyperparameters(opt_ml: OptMl) -> dict[str, Any]:
    """Hyperparameters as SageMaker wrote them (every value a string).

    Not JSON-decoded here, unlike SageMaker's toolkit: "2026.11" may be a version
    string, and the entry point converts each value by its config field's type.
    """
    path = opt_ml.config_dir / "hyperparameters.json"
    if not path.exists():
        return {}
    return _read_json_object(path)


def hyperparameters(environ: Mapping[str, str]) -> dict[str, Any]:
    """The one reading of hyperparameters for the entry point: SM_HPS (JSON) if set, else
    hyperparameters.json under SM_INPUT_CONFIG_DIR (or the /opt/ml tree), else none."""
    if environ.get("SM_HPS"):
        try:
            value = json.loads(environ["SM_HPS"])
        except (ValueError, RecursionError) as exc:
            raise ContainerConfigError(f"SM_HPS: not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ContainerConfigError(
                f"SM_HPS: expected a JSON object, not {type(value).__name__}"
            )
        return value
    config_dir = environ.get("SM_INPUT_CONFIG_DIR")
    opt_ml = OptMl.from_environ(environ)
    return read_hyperparameters(OptMl(Path(config_dir).parent.parent) if config_dir else opt_ml)


def channels(opt_ml: OptMl) -> dict[str, Path]:
    """Channel name -> folder: from inputdataconfig.json when present, else the folders."""
    config_path = opt_ml.config_dir / "inputdataconfig.json"
    if config_path.exists():
        names = sorted(_read_json_object(config_path))
    elif opt_ml.data_dir.is_dir():
        names = sorted(entry.name for entry in opt_ml.data_dir.iterdir() if entry.is_dir())
    else:
        names = []
    return {name: opt_ml.data_dir / name for name in names}


def _env_name(name: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in name).upper()


def training_environment(opt_ml: OptMl, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` plus the SM_* variables the training toolkit would set, existing ones kept."""
    hyperparameters = read_hyperparameters(opt_ml)
    found = channels(opt_ml)
    mapped: dict[str, str] = {
        "SM_MODEL_DIR": str(opt_ml.model_dir),
        "SM_INPUT_DIR": str(opt_ml.input_dir),
        "SM_INPUT_CONFIG_DIR": str(opt_ml.config_dir),
        "SM_OUTPUT_DIR": str(opt_ml.output_dir),
        "SM_OUTPUT_DATA_DIR": str(opt_ml.output_data_dir),
        "SM_CHANNELS": json.dumps(sorted(found)),
        "SM_HPS": json.dumps(hyperparameters),
    }
    for name, path in found.items():
        mapped[f"SM_CHANNEL_{_env_name(name)}"] = str(path)
    for name, value in hyperparameters.items():
        mapped[f"SM_HP_{_env_name(name)}"] = value if isinstance(value, str) else json.dumps(value)
    return {**mapped, **environ}


def write_failure(opt_ml: OptMl, message: str) -> None:
    """Leave the reason where SageMaker shows it as the job's FailureReason."""
    opt_ml.output_dir.mkdir(parents=True, exist_ok=True)
    opt_ml.failure_file.write_text(message[-FAILURE_MESSAGE_LIMIT:], encoding="utf-8")


def run_training(environ: Mapping[str, str] | None = None) -> int:
    """Run the training entry point in this process under the mapped environment.

    Returns the exit status; on failure the reason is also in /opt/ml/output/failure.
    """
    opt_ml = OptMl.from_environ(environ)
    try:
        env = training_environment(opt_ml, os.environ if environ is None else environ)
    except ContainerConfigError as exc:
        write_failure(opt_ml, f"ContainerConfigError: {exc}")
        print(f"train: {exc}", file=sys.stderr)
        return 2
    os.environ.update(env)
    for folder in (opt_ml.model_dir, opt_ml.output_data_dir):
        folder.mkdir(parents=True, exist_ok=True)
    # The entry point reads its settings from the environment, not from our arguments.
    sys.argv = [TRAINING_MODULE]
    try:
        runpy.run_module(TRAINING_MODULE, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code in (None, 0):
            return 0
        # The entry point may have written a better reason already; keep it.
        if not opt_ml.failure_file.exists():
            write_failure(opt_ml, f"{TRAINING_MODULE} exited with {exc.code}")
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # every failure, KeyboardInterrupt included, must reach SageMaker
        traceback.print_exc()
        # The traceback ends with the exception's own line, which the truncation keeps.
        write_failure(opt_ml, traceback.format_exc())
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="petal-sagemaker-container",
        description="SageMaker bring-your-own-container commands.",
    )
    parser.add_argument("command", choices=["train"], help="what SageMaker asked the image to do")
    args = parser.parse_args(argv)
    if args.command == "train":
        return run_training()
    raise AssertionError(args.command)  # argparse's choices make this unreachable


if __name__ == "__main__":
    sys.exit(main())
