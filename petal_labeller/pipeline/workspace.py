"""The folder that holds one run's staged files, and where rejected papers are kept."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from petal_labeller import config


@dataclass(frozen=True)
class Workspace:
    """Files of one labelling run: staged input, model output, and the quarantine report."""

    root: Path

    @property
    def input_path(self) -> Path:
        return self.root / "papers.jsonl"

    @property
    def output_path(self) -> Path:
        return self.root / "predictions.jsonl"

    def create(self) -> Workspace:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def remove(self) -> bool:
        """Delete the folder; True if there was one."""
        if not self.root.exists():
            return False
        shutil.rmtree(self.root)
        return True


def runs_dir() -> Path:
    return config.petal_home() / "runs"


def quarantine_dir() -> Path:
    """Rejected papers outlive the run's workspace so someone can fix and re-import them."""
    return config.petal_home() / "quarantine"


def workspace_for(key: str, base: Path | None = None) -> Workspace:
    """The workspace of the run named `key` (a relative path such as `dag/abc123`)."""
    if Path(key).is_absolute() or ".." in Path(key).parts:
        raise ValueError(f"workspace key {key!r} must be a relative path inside the runs folder")
    return Workspace((base or runs_dir()) / key)
