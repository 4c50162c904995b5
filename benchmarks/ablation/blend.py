"""Research recipes kept for the record, behind the library's recipe interface (fit, save, load).

`blend` (the default until 2026-11-26): a linear head over the frozen encoder
trained with the asymmetric loss until the validation loss stops falling, blended
with kNN over all training papers and a word TF-IDF SVM by weights tuned on inner
out-of-fold scores. `v0.1`: the original recipe (CLS pooler, AdamW 2e-5, batch 32,
4 epochs, BCE, head only). `finetune`: `blend` with the encoder trained too (slow
on a CPU). `head-only`, `knn-only`, `head+knn`: parts of `blend`.

    nice python -m benchmarks.ablation.blend --preset blend --split cv --report DIR

Importing this module registers the recipe, so `petal_labeller.model.train.fit`,
`save_model` and `evaluate.run_experiment` run it like the production one; the
runtime still serves blend artefacts (format_version 1).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.model.config import ConfigError, TrainConfig, from_dict
from petal_labeller.model.encoder import (
    encoder_texts,
    frozen_embeddings,
    normalise,
    seed_everything,
)
from petal_labeller.model.metrics import micro_f1, ranking_objective
from petal_labeller.model.recipes import TrainedModel, load_saved, register
from petal_labeller.model.scoring import gold_matrix, score
from petal_labeller.model.selection import predicted_matrix
from petal_labeller.model.splits import holdout_indices, kfold_indices

log = logging.getLogger(__name__)

WEIGHT_STEP = 0.1
THRESHOLD_GRID = tuple(round(t, 3) for t in np.arange(0.02, 0.96, 0.01))
# Per-label thresholds are pulled towards the global one in proportion to how
# few validation positives a label has (a pseudo-count).
THRESHOLD_SHRINKAGE = 5.0
BLEND_SCORERS = ("head", "knn", "tfidf")


@dataclass
class BlendConfig(TrainConfig):
    """TrainConfig plus the head-training knobs; defaults are the old `blend` recipe."""

    recipe: str = "blend"
    include_venue: bool = True
    scorers: str = "head,knn,tfidf"
    knn_k: int = 0
    knn_temperature: float = 0.05
    tfidf_char: bool = False
    tfidf_scale: float = 2.0
    dropout: float = 0.1
    batch_size: int = 32
    epochs: int = 60
    body_lr: float = 0.0  # 0 = frozen encoder, embeddings computed once
    head_lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 5
    max_steps: int = 0
    loss: str = "asl"  # "bce", "asl" (Ridnik et al. 2021) or "focal"
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 0.0
    asl_clip: float = 0.05
    focal_gamma: float = 2.0
    validation_fraction: float = 0.15
    scorer_weights: str = "auto"  # or "head=0.2,knn=0.4,tfidf=0.4"
    threshold_mode: str = "global"  # or "per_label"

    def validate(self) -> None:
        names = self.scorer_names()
        checks = [
            (bool(names) and set(names) <= set(BLEND_SCORERS), f"scorers from {BLEND_SCORERS}"),
            (self.loss in ("bce", "asl", "focal"), "loss must be bce, asl or focal"),
            (self.batch_size >= 1 and self.epochs >= 1, "batch_size and epochs must be >= 1"),
            (0.0 < self.validation_fraction < 0.5, "validation_fraction must be in (0, 0.5)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def fixed_weights(self) -> dict[str, float]:
        """scorer_weights "head=0.2,knn=0.8" as a dict, normalised to sum to 1."""
        pairs = [item.split("=") for item in str(self.scorer_weights).split(",") if item.strip()]
        weights = {name.strip(): float(value) for name, value in pairs}
        total = sum(weights.values())
        return {name: value / total for name, value in weights.items()} if total else weights


PRESETS: dict[str, dict[str, Any]] = {
    "blend": {},
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
    "finetune": {"body_lr": 5e-5, "head_lr": 1e-3, "batch_size": 16, "epochs": 6, "patience": 2},
    "head-only": {"scorers": "head"},
    "knn-only": {"scorers": "knn"},
    "head+knn": {"scorers": "head,knn"},
}


def preset(name: str = "blend", **overrides: Any) -> BlendConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown research preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = {"preset": name, **PRESETS[name], **overrides}
    return from_dict(values, BlendConfig)


# -- training the head -------------------------------------------------------------------


def _optimizer(net: Any, config: BlendConfig):
    import torch

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups: dict[tuple[float, float], list] = {}
    for name, param in net.named_parameters():
        lr = config.head_lr if name.startswith("head.") else config.body_lr
        decay = 0.0 if any(token in name for token in no_decay) else config.weight_decay
        if lr == 0.0:
            param.requires_grad_(False)
            continue
        groups.setdefault((lr, decay), []).append(param)
    return torch.optim.AdamW(
        [{"params": p, "lr": lr, "weight_decay": d} for (lr, d), p in groups.items()]
    )


def _forward(net: Any, tokenizer: Any, texts: list[str], config: BlendConfig):
    """rows -> logits; with a frozen body the pooled vectors are computed once."""
    import torch

    from petal_labeller.model.encoder import pad_batch

    encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
    if config.body_lr > 0:

        def forward(rows) -> torch.Tensor:
            features = pad_batch(tokenizer, encoded, rows)
            return net(features["input_ids"], features["attention_mask"])[1]

        return forward, encoded
    pooled = torch.from_numpy(frozen_embeddings(net, tokenizer, texts, config))
    return (lambda rows: net.head(net.dropout(pooled[torch.as_tensor(rows)]))), encoded


def _validation_loss(forward, loss_fn, net, encoded, rows, targets, batch_size) -> float:
    import torch

    net.eval()
    total = 0.0
    rows = sorted(rows, key=lambda i: len(encoded["input_ids"][i]))
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            total += loss_fn(forward(batch), torch.from_numpy(targets[batch])).item() * len(batch)
    return total / max(1, len(rows))


def _epoch(forward, loss_fn, optimizer, scheduler, net, order, targets, config, budget) -> tuple:
    import torch

    seen, total, steps = 0, 0.0, 0
    for start in range(0, len(order), config.batch_size):
        batch = order[start : start + config.batch_size]
        loss = loss_fn(forward(batch), torch.from_numpy(targets[batch]))
        optimizer.zero_grad()
        loss.backward()
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        steps, seen, total = steps + 1, seen + len(batch), total + loss.item() * len(batch)
        if steps >= budget:
            break
    return steps, total / max(1, seen)


def fine_tune(net, tokenizer, texts, targets, train_rows, val_rows, config, progress=True):
    """Warmup + linear decay; keep the epoch with the lowest validation loss."""
    from transformers import get_linear_schedule_with_warmup

    from .losses import make_loss

    forward, encoded = _forward(net, tokenizer, texts, config)
    loss_fn, optimizer = make_loss(config), _optimizer(net, config)
    total_steps = -(-len(train_rows) // config.batch_size) * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    generator = np.random.default_rng(config.seed)
    history, best_loss, best_state, stale, step = [], float("inf"), None, 0, 0
    for epoch in range(1, config.epochs + 1):
        net.train()
        if config.body_lr == 0:
            net.encoder.eval()
        started = time.monotonic()
        done, train_loss = _epoch(forward, loss_fn, optimizer, scheduler, net,
                                  generator.permutation(train_rows), targets, config,
                                  total_steps - step)  # fmt: skip
        step += done
        val_loss = _validation_loss(
            forward, loss_fn, net, encoded, val_rows, targets, config.eval_batch_size
        )
        history.append({"epoch": epoch, "step": step, "train_loss": train_loss,
                        "val_loss": val_loss, "seconds": time.monotonic() - started})  # fmt: skip
        if val_loss < best_loss - 1e-6:
            best_loss, stale = val_loss, 0
            best_state = copy.deepcopy(net.state_dict()) if config.patience else None
        else:
            stale += 1
        if step >= total_steps or (config.patience and stale >= config.patience):
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return history


# -- weights and thresholds --------------------------------------------------------------


def weight_grid(names: list[str], step: float = WEIGHT_STEP) -> list[dict[str, float]]:
    """Every blend on the simplex with this step (66 for three scorers at 0.1)."""
    units = round(1 / step)
    return [
        {n: round(c * step, 4) for n, c in zip(names, combo, strict=True)}
        for combo in itertools.product(range(units + 1), repeat=len(names))
        if sum(combo) == units
    ]


def blended(model: Any, parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The runtime's blend with these weights (no settings are changed)."""
    from petal_labeller.runtime.combine import cap_by_parent

    total = np.asarray(sum(w * parts[n] for n, w in weights.items() if w), dtype=np.float32)
    if model.settings.get("hierarchy", "cap") != "cap":
        return total
    return cap_by_parent(total, model.parent_index, model.order)


def tune_thresholds(scores: np.ndarray, gold: np.ndarray, model: Any, mode: str) -> dict:
    """Global threshold with the best micro-F1, then (optionally) shrunk per-label ones."""
    best = max(
        THRESHOLD_GRID,
        key=lambda t: micro_f1(predicted_matrix(scores, np.full(scores.shape[1], t), model), gold),
    )
    spec: dict[str, Any] = {"global": float(best), "per_label": {}}
    if mode != "per_label":
        return spec
    for column, label_id in enumerate(model.label_ids):
        positives = float(gold[:, column].sum())
        if positives:
            own = max(THRESHOLD_GRID, key=lambda t, c=column: micro_f1(
                (scores[:, c : c + 1] >= t).astype(np.float32), gold[:, c : c + 1]))  # fmt: skip
            weight = positives / (positives + THRESHOLD_SHRINKAGE)
            spec["per_label"][label_id] = round(weight * own + (1 - weight) * best, 4)
    return spec


def blend_settings(config: BlendConfig, weights: dict[str, float]) -> dict[str, Any]:
    return {
        "format_version": 1, "pooling": config.pooling, "max_length": config.max_length,
        "include_venue": config.include_venue,
        "scorers": {name: round(float(w), 4) for name, w in weights.items()},
        "knn": {"k": config.knn_k, "temperature": config.knn_temperature},
        "hierarchy": config.hierarchy, "min_labels": config.min_labels,
    }  # fmt: skip


# -- the recipe --------------------------------------------------------------------------


@dataclass
class _State:
    """What one blend fit carries between its steps."""

    model: Any
    texts: list[str]
    targets: np.ndarray  # closed upwards, as the head was trained
    gold: np.ndarray
    pooled: np.ndarray
    logits: np.ndarray
    history: list[dict[str, float]]
    tfidf: Any = None


def _fit_tfidf(texts, targets, config: BlendConfig):
    from petal_labeller.model.baseline import fit_tfidf_svm_texts, make_scorer
    from petal_labeller.model.bases import FittedTfidf

    spec, arrays = fit_tfidf_svm_texts(
        texts, targets, config.tfidf_c, config.tfidf_scale, char=config.tfidf_char
    )
    return FittedTfidf(spec, arrays, make_scorer(spec, arrays))


def _point_bases(state: _State, rows, config: BlendConfig) -> None:
    """kNN bank and TF-IDF scorer fit on `rows` only."""
    state.model.knn_bank = normalise(state.pooled[rows])
    state.model.knn_labels = state.targets[rows]
    if "tfidf" in config.scorer_names():
        state.tfidf = _fit_tfidf([state.texts[i] for i in rows], state.targets[rows], config)
        state.model.tfidf = state.tfidf.scorer


def _train(papers, taxonomy, config: BlendConfig, progress: bool) -> tuple[_State, np.ndarray]:
    from transformers import AutoTokenizer

    from petal_labeller.model.data import target_matrix
    from petal_labeller.runtime.model import LoadedModel
    from petal_labeller.runtime.network import LabellerNet, load_encoder

    seed_everything(config.seed)
    train_rows, val_rows = holdout_indices(len(papers), config.validation_fraction, config.seed)
    texts = encoder_texts([p.record for p in papers], config)
    targets = target_matrix(papers, taxonomy, close=True)
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    net = LabellerNet(load_encoder(config.base_model, config.pooling), len(taxonomy),
                      config.pooling, config.dropout)  # fmt: skip
    history = fine_tune(net, tokenizer, texts, targets, train_rows, val_rows, config, progress)
    names = config.scorer_names()
    model = LoadedModel(
        model_dir=Path("."), tokenizer=tokenizer, net=net,
        settings=blend_settings(config, dict.fromkeys(names, 1.0)),
        labels=taxonomy.to_records(), thresholds=np.full(len(taxonomy), 0.5, np.float32),
        batch_size=config.eval_batch_size,
    )  # fmt: skip
    pooled, logits = _encoded(model, net, tokenizer, texts, config)
    gold = gold_matrix([p.labels for p in papers], taxonomy)
    state = _State(model, texts, targets, gold, pooled, logits, history)
    _point_bases(state, train_rows, config)
    return state, val_rows


def _encoded(model, net, tokenizer, texts, config) -> tuple[np.ndarray, np.ndarray]:
    if config.body_lr > 0:
        return model.encode(texts)
    import torch

    pooled = frozen_embeddings(net, tokenizer, texts, config)
    with torch.inference_mode():
        return pooled, net.head(torch.from_numpy(pooled)).numpy()


def _out_of_fold(state: _State, config: BlendConfig) -> dict[str, np.ndarray]:
    """Each paper's scorer outputs from a head, kNN bank and SVM that never saw it."""
    import torch

    net, n = state.model.net, len(state.texts)
    trained_head = copy.deepcopy(net.head.state_dict())
    best_epoch = min(state.history, key=lambda h: h["val_loss"])["epoch"]
    inner = config.replace(epochs=best_epoch, patience=0, max_steps=0)
    parts: dict[str, np.ndarray] = {}
    for inner_train, inner_test in kfold_indices(n, config.tune_folds, config.seed):
        net.head.reset_parameters()
        fine_tune(net, state.model.tokenizer, state.texts, state.targets, inner_train,
                  inner_test, inner, progress=False)  # fmt: skip
        with torch.inference_mode():
            logits = net.head(torch.from_numpy(state.pooled[inner_test])).numpy()
        _point_bases(state, inner_train, config)
        texts = [state.texts[i] for i in inner_test]
        for name, values in state.model.components(texts, state.pooled[inner_test], logits).items():
            parts.setdefault(name, np.zeros((n, values.shape[1]), np.float32))
            parts[name][inner_test] = values
    net.head.load_state_dict(trained_head)
    net.eval()
    return parts


def _weights(state: _State, parts, rows, config: BlendConfig) -> tuple[dict, list[float]]:
    names = config.scorer_names()
    if len(names) == 1:
        return {names[0]: 1.0}, []
    if config.scorer_weights != "auto":
        return config.fixed_weights(), []
    grid = weight_grid(names)
    objective = [ranking_objective(blended(state.model, parts, w), state.gold[rows]) for w in grid]
    return grid[int(np.argmax(objective))], objective


class BlendRecipe:
    """The `blend` entry of the recipe table (research only)."""

    def fit(self, papers, taxonomy, config: BlendConfig, progress: bool = True) -> TrainedModel:
        from petal_labeller.runtime.validate import parse_thresholds

        started = time.monotonic()
        state, val_rows = _train(papers, taxonomy, config, progress)
        model = state.model
        val_parts = model.components([state.texts[i] for i in val_rows], state.pooled[val_rows],
                                     state.logits[val_rows])  # fmt: skip
        tune_rows, tune_parts = val_rows, val_parts
        if config.tune_folds > 1 and config.body_lr == 0 and len(config.scorer_names()) > 1:
            tune_rows, tune_parts = np.arange(len(papers)), _out_of_fold(state, config)
        weights, objective = _weights(state, tune_parts, tune_rows, config)
        model.settings = blend_settings(config, weights)
        spec = tune_thresholds(model.blend(tune_parts), state.gold[tune_rows], model,
                               config.threshold_mode)  # fmt: skip
        model.thresholds = parse_thresholds(spec, model.label_ids)
        scores = model.blend(val_parts)
        predicted = predicted_matrix(scores, model.thresholds, model)
        validation = score(scores, predicted, state.gold[val_rows], taxonomy)
        _point_bases(state, np.arange(len(papers)), config)  # ship every paper
        tuning = {"scorer_weights": weights, "thresholds": spec,
                  "weight_search": {"candidates": len(objective),
                                    "best": max(objective, default=None),
                                    "papers": len(tune_rows)}}  # fmt: skip
        return TrainedModel(model=model, config=config, validation=validation,
                            val_scores=scores, val_gold=state.gold[val_rows],
                            val_predicted=predicted, seconds=time.monotonic() - started,
                            tuning=tuning, history=state.history,
                            parts={"tfidf": state.tfidf})  # fmt: skip

    def save(self, trained: TrainedModel, model_dir: Path) -> None:
        from petal_labeller.model.artefact import write_json
        from petal_labeller.model.weights import save_arrays, save_knn, save_tfidf

        model = trained.model
        scorers = model.settings["scorers"]
        if scorers.get("head"):
            head = {k: v.detach().numpy() for k, v in model.net.head.state_dict().items()}
            save_arrays(model_dir / "head.safetensors", head)
        if scorers.get("knn"):
            save_knn(model, model_dir)
        if scorers.get("tfidf"):
            save_tfidf(trained.parts["tfidf"], model_dir)
        write_json(model_dir / "labeller.json", model.settings)

    def load(self, model_dir: Path, precision: str | None = None) -> Any:
        return load_saved(model_dir, precision)


BLEND = BlendRecipe()
register("blend", "benchmarks.ablation.blend:BLEND")


def main() -> None:
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.model.evaluate import run_experiment

    parser = argparse.ArgumentParser(description="A research recipe on the shared folds.")
    parser.add_argument("--preset", default="blend", choices=sorted(PRESETS))
    parser.add_argument("--split", choices=["fixed", "cv"], default="cv")
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KNOB=VALUE")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    values = dict(item.split("=", 1) for item in args.overrides)
    fields = {f.name: f for f in dataclasses.fields(BlendConfig)}
    typed = {k: type(fields[k].default)(v) if k in fields else v for k, v in values.items()}
    result = run_experiment(
        SHARED_DATA_DIR / "labelled_papers.jsonl",
        SHARED_DATA_DIR / "taxonomy.json",
        args.report,
        preset(args.preset, **typed),
        folds=[0] if args.split == "fixed" else None,
    )
    print(result["rows"])


if __name__ == "__main__":
    main()
