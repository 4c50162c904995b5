"""One interface for every training recipe, and the table of recipes.

A recipe fits a model on labelled papers (`fit`), writes its own files into an
artefact folder (`save`: weights and `labeller.json`; train.py writes the shared
files around them) and loads one back (`load`: the runtime's loader, so what a
recipe saved is what serves). `TrainConfig.recipe` picks the entry; research
recipes (benchmarks/ablation) add theirs with `register`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from petal_labeller.model.config import ConfigError, TrainConfig
from petal_labeller.model.data import LabelledPaper
from petal_labeller.taxonomy import Taxonomy


@dataclass
class TrainedModel:
    """A trained, tuned model in memory plus what the report and the artefact need."""

    model: Any  # runtime.model.LoadedModel, fp32
    config: TrainConfig
    validation: dict[str, float]
    val_scores: np.ndarray
    val_gold: np.ndarray
    val_predicted: np.ndarray
    seconds: float
    tuning: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    #: Fitted parts the artefact stores but the served model does not hold (e.g. tfidf).
    parts: dict[str, Any] = field(default_factory=dict)


class Recipe(Protocol):
    def fit(
        self, papers: list[LabelledPaper], taxonomy: Taxonomy, config: TrainConfig, progress: bool
    ) -> TrainedModel: ...

    def save(self, trained: TrainedModel, model_dir: Path) -> None: ...

    def load(self, model_dir: Path, precision: str | None = None) -> Any: ...


#: Recipe name -> "module:attribute", imported on first use (torch-free until then).
RECIPES: dict[str, str] = {"stack": "petal_labeller.model.stacking:STACK"}


def register(name: str, target: str) -> None:
    """Add a recipe ("module:attribute") to the table, e.g. from benchmarks/ablation."""
    RECIPES[name] = target


def recipe_for(config: TrainConfig) -> Recipe:
    if config.recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {config.recipe!r}; choose one of {', '.join(RECIPES)}")
    module, attribute = RECIPES[config.recipe].split(":")
    return getattr(importlib.import_module(module), attribute)


def load_saved(model_dir: str | Path, precision: str | None = None) -> Any:
    """Any saved recipe's model, through the runtime (the one loader for every artefact)."""
    from petal_labeller.runtime.load import load_model

    return load_model(model_dir, precision=precision)
