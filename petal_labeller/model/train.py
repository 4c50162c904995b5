"""Fine-tune encoder + head, tune scorer weights and thresholds on validation, write the artefact.

The network, text building and scoring come from `petal_labeller.runtime`,
so what is tuned here is exactly what the artefact serves.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.model.artefact import ARTEFACT_NAME, add_runtime_record, pack, write_json
from petal_labeller.model.config import TrainConfig, preset
from petal_labeller.model.data import LabelledPaper, file_sha256, load_labelled, target_matrix
from petal_labeller.model.metrics import micro_f1, ranking_objective
from petal_labeller.model.scoring import gold_matrix, score
from petal_labeller.model.splits import holdout_indices
from petal_labeller.taxonomy import Taxonomy

log = logging.getLogger(__name__)

WEIGHT_STEP = 0.1
THRESHOLD_GRID = tuple(round(t, 3) for t in np.arange(0.02, 0.96, 0.01))
# Per-label thresholds are pulled towards the global one in proportion to how
# few validation positives a label has (a pseudo-count), since ~100 papers
# cannot pin down 131 thresholds on their own.
THRESHOLD_SHRINKAGE = 5.0


@dataclass
class TrainedModel:
    """A trained, tuned model in memory plus what the report needs."""

    model: Any  # inference.LoadedModel, fp32
    config: TrainConfig
    history: list[dict[str, float]]
    validation: dict[str, float]
    val_scores: np.ndarray
    val_gold: np.ndarray
    val_predicted: np.ndarray
    seconds: float
    tuning: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _texts(papers: list[LabelledPaper], config: TrainConfig) -> list[str]:
    from petal_labeller.runtime.text import CHARS_PER_TOKEN_BOUND, paper_text

    max_chars = config.max_length * CHARS_PER_TOKEN_BOUND
    return [paper_text(p.record, config.include_venue, max_chars) for p in papers]


def _optimizer(net: Any, config: TrainConfig):
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
        [
            {"params": params, "lr": lr, "weight_decay": decay}
            for (lr, decay), params in groups.items()
        ]
    )


def _pad(tokenizer: Any, encoded: dict, rows) -> dict:
    return tokenizer.pad(
        {
            "input_ids": [encoded["input_ids"][i] for i in rows],
            "attention_mask": [encoded["attention_mask"][i] for i in rows],
        },
        return_tensors="pt",
    )


# Pooled vectors of the unmodified base encoder, by (base model, pooling, max
# length, text): cross-validation and ablations refit on overlapping papers, and
# a frozen encoder gives each text the same vector every time.
_FROZEN_CACHE: dict[tuple[str, str, int, str], np.ndarray] = {}
_FROZEN_CACHE_LIMIT = 50_000


def frozen_embeddings(net: Any, tokenizer: Any, texts: list[str], config: TrainConfig):
    """Pooled vectors of the (frozen, untouched) encoder, computed once per text."""
    import torch

    keys = [(config.base_model, config.pooling, config.max_length, text) for text in texts]
    missing = sorted({i for i, key in enumerate(keys) if key not in _FROZEN_CACHE})
    if missing:
        if len(_FROZEN_CACHE) + len(missing) > _FROZEN_CACHE_LIMIT:
            _FROZEN_CACHE.clear()
        encoded = tokenizer(
            [texts[i] for i in missing], truncation=True, max_length=config.max_length
        )
        by_length = sorted(range(len(missing)), key=lambda j: len(encoded["input_ids"][j]))
        net.eval()
        with torch.inference_mode():
            for start in range(0, len(by_length), config.eval_batch_size):
                rows = by_length[start : start + config.eval_batch_size]
                features = _pad(tokenizer, encoded, rows)
                vectors = net.pool(features["input_ids"], features["attention_mask"]).numpy()
                for j, vector in zip(rows, vectors, strict=True):
                    _FROZEN_CACHE[keys[missing[j]]] = vector
    return np.stack([_FROZEN_CACHE[key] for key in keys]).astype(np.float32)


def _forward(net: Any, tokenizer: Any, texts: list[str], config: TrainConfig):
    """rows -> logits. With a frozen body (body_lr 0) the pooled vectors are computed once,
    so each epoch costs only the head: seconds instead of minutes on a CPU."""
    import torch

    encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
    if config.body_lr > 0:

        def forward(rows) -> torch.Tensor:
            features = _pad(tokenizer, encoded, rows)
            return net(features["input_ids"], features["attention_mask"])[1]

        return forward, encoded
    pooled = torch.from_numpy(frozen_embeddings(net, tokenizer, texts, config))

    def forward_frozen(rows) -> torch.Tensor:
        return net.head(net.dropout(pooled[torch.as_tensor(rows)]))

    return forward_frozen, encoded


def _validation_loss(forward, loss_fn, net, encoded, rows, targets, batch_size) -> float:
    import torch

    net.eval()
    total = 0.0
    # Length-sorted batches: same sums, far less padding.
    rows = sorted(rows, key=lambda i: len(encoded["input_ids"][i]))
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            total += loss_fn(forward(batch), torch.from_numpy(targets[batch])).item() * len(batch)
    return total / max(1, len(rows))


def fine_tune(net, tokenizer, texts, targets, train_rows, val_rows, config, progress=True):
    """Train with warmup + linear decay; keep the epoch with the lowest validation loss."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from petal_labeller.model.losses import make_loss

    forward, encoded = _forward(net, tokenizer, texts, config)
    loss_fn = make_loss(config)
    optimizer = _optimizer(net, config)
    steps_per_epoch = -(-len(train_rows) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    generator = np.random.default_rng(config.seed)
    history: list[dict[str, float]] = []
    best_loss, best_state, stale, step = float("inf"), None, 0, 0
    bar = tqdm(
        total=total_steps, desc="training", unit="step", disable=not progress, mininterval=2.0
    )
    for epoch in range(1, config.epochs + 1):
        net.train()
        if config.body_lr == 0:
            net.encoder.eval()
        started, seen, epoch_loss = time.monotonic(), 0, 0.0
        order = generator.permutation(train_rows)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = loss_fn(forward(batch), torch.from_numpy(targets[batch]))
            optimizer.zero_grad()
            loss.backward()
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            seen += len(batch)
            epoch_loss += loss.item() * len(batch)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
            if step >= total_steps:
                break
        val_loss = _validation_loss(
            forward, loss_fn, net, encoded, val_rows, targets, config.eval_batch_size
        )
        record = {
            "epoch": epoch,
            "step": step,
            "train_loss": epoch_loss / max(1, seen),
            "val_loss": val_loss,
            "seconds": time.monotonic() - started,
        }
        history.append(record)
        log.info(
            "epoch %d/%d: train loss %.4f, validation loss %.4f (%.0f s)",
            epoch, config.epochs, record["train_loss"], val_loss, record["seconds"],
        )  # fmt: skip
        if val_loss < best_loss - 1e-6:
            best_loss, stale = val_loss, 0
            if config.patience:
                best_state = copy.deepcopy(net.state_dict())
        else:
            stale += 1
        if step >= total_steps or (config.patience and stale >= config.patience):
            break
    bar.close()
    # With early stopping, keep the best epoch; without (v0.1, inner folds),
    # the last one, so no test fold ever chooses an epoch.
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return history


def _predicted_matrix(scores, thresholds, model) -> np.ndarray:
    from petal_labeller.runtime.combine import choose_labels

    chosen = choose_labels(scores, thresholds, model.ancestors, int(model.settings["min_labels"]))
    predicted = np.zeros_like(scores)
    for row, columns in enumerate(chosen):
        predicted[row, columns] = 1.0
    return predicted


def tune_thresholds(scores: np.ndarray, gold: np.ndarray, model: Any, mode: str) -> dict:
    """Global threshold with the best micro-F1, then (optionally) shrunk per-label ones."""
    best = max(
        THRESHOLD_GRID,
        key=lambda t: micro_f1(_predicted_matrix(scores, np.full(scores.shape[1], t), model), gold),
    )
    spec: dict[str, Any] = {"global": float(best), "per_label": {}}
    if mode == "per_label":
        for column, label_id in enumerate(model.label_ids):
            positives = float(gold[:, column].sum())
            if positives == 0:
                continue
            own = max(
                THRESHOLD_GRID,
                key=lambda t, c=column: micro_f1(
                    (scores[:, c : c + 1] >= t).astype(np.float32), gold[:, c : c + 1]
                ),
            )
            weight = positives / (positives + THRESHOLD_SHRINKAGE)
            spec["per_label"][label_id] = round(weight * own + (1 - weight) * best, 4)
    return spec


def _settings(config: TrainConfig, weights: dict[str, float]) -> dict[str, Any]:
    return {
        "format_version": 1,
        "pooling": config.pooling,
        "max_length": config.max_length,
        "include_venue": config.include_venue,
        "scorers": {name: round(float(w), 4) for name, w in weights.items()},
        "knn": {"k": config.knn_k, "temperature": config.knn_temperature},
        "hierarchy": config.hierarchy,
        "min_labels": config.min_labels,
    }


def weight_grid(names: list[str], step: float = WEIGHT_STEP) -> list[dict[str, float]]:
    """Every blend on the simplex with this step (66 for three scorers at 0.1)."""
    units = round(1 / step)
    grid = []
    for combo in itertools.product(range(units + 1), repeat=len(names)):
        if sum(combo) == units:
            grid.append({n: round(c * step, 4) for n, c in zip(names, combo, strict=True)})
    return grid


def fit(
    papers: list[LabelledPaper],
    taxonomy: Taxonomy,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> TrainedModel:
    """Train on a seeded train split; tune scorer weights and thresholds on the rest.

    The stack (`combiner="stack"`, the default preset) is fit by stacking.fit_stack."""
    from transformers import AutoTokenizer

    from petal_labeller.runtime.model import LoadedModel
    from petal_labeller.runtime.network import LabellerNet, load_encoder

    config = config or preset("default")
    if config.combiner == "stack":
        from petal_labeller.model.stacking import fit_stack

        return fit_stack(papers, taxonomy, config, progress)
    started = time.monotonic()
    seed_everything(config.seed)
    train_rows, val_rows = holdout_indices(len(papers), config.validation_fraction, config.seed)
    texts = _texts(papers, config)
    targets = target_matrix(papers, taxonomy, close=True)
    gold = gold_matrix([p.labels for p in papers], taxonomy)
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    net = LabellerNet(
        load_encoder(config.base_model, config.pooling),
        len(taxonomy),
        config.pooling,
        config.dropout,
    )
    log.info(
        "training on %d papers, validating on %d, %d labels, base model %s",
        len(train_rows), len(val_rows), len(taxonomy), config.base_model,
    )  # fmt: skip
    history = fine_tune(net, tokenizer, texts, targets, train_rows, val_rows, config, progress)

    names = config.scorer_names()
    model = LoadedModel(
        model_dir=Path("."),
        tokenizer=tokenizer,
        net=net,
        settings=_settings(config, dict.fromkeys(names, 1.0)),
        labels=taxonomy.to_records(),
        thresholds=np.full(len(taxonomy), 0.5, dtype=np.float32),
        batch_size=config.eval_batch_size,
    )
    if config.body_lr > 0:
        pooled, logits = model.encode(texts)
    else:  # the encoder is untouched: reuse its vectors, only the head changed
        import torch

        pooled = frozen_embeddings(net, tokenizer, texts, config)
        with torch.inference_mode():
            logits = net.head(torch.from_numpy(pooled)).numpy()
    model.knn_bank = _normalise(pooled[train_rows])
    model.knn_labels = targets[train_rows]
    if "tfidf" in names:
        model.tfidf = _fit_tfidf([texts[i] for i in train_rows], targets[train_rows], config)
    val_texts = [texts[i] for i in val_rows]
    val_parts = model.components(val_texts, pooled[val_rows], logits[val_rows])
    tune_rows, tune_parts = val_rows, val_parts
    if config.tune_folds > 1 and config.body_lr == 0 and len(names) > 1:
        # 76 validation papers pick noisy weights; out-of-fold scores of every
        # paper give the weights and thresholds 6x more evidence (frozen body:
        # each inner fold costs a head and an SVM fit, seconds).
        tune_rows = np.arange(len(papers))
        tune_parts = _out_of_fold(model, net, tokenizer, texts, targets, pooled, history, config)

    def blended(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
        model.settings = _settings(config, weights)
        return model.blend(parts)

    if config.scorer_weights == "auto" and len(names) > 1:
        grid = weight_grid(names)
        objective = [ranking_objective(blended(tune_parts, w), gold[tune_rows]) for w in grid]
        weights = grid[int(np.argmax(objective))]
        log.info(
            "scorer weights tuned on %d papers: %s (objective %.4f)",
            len(tune_rows), weights, max(objective),
        )  # fmt: skip
    else:
        objective, weights = [], (config.fixed_weights() if len(names) > 1 else {names[0]: 1.0})
    spec = tune_thresholds(
        blended(tune_parts, weights), gold[tune_rows], model, config.threshold_mode
    )
    scores = blended(val_parts, weights)
    from petal_labeller.runtime.validate import parse_thresholds as _thresholds

    model.thresholds = _thresholds(spec, model.label_ids)
    predicted = _predicted_matrix(scores, model.thresholds, model)
    validation = score(scores, predicted, gold[val_rows], taxonomy)
    # What ships has seen every paper, validation included: the kNN bank holds
    # them all and the TF-IDF scorer is refitted on them (seconds). The head
    # keeps the epoch chosen by validation loss.
    model.knn_bank, model.knn_labels = _normalise(pooled), targets
    if "tfidf" in names:
        model.tfidf = _fit_tfidf(texts, targets, config)
    return TrainedModel(
        model=model,
        config=config,
        history=history,
        validation=validation,
        val_scores=scores,
        val_gold=gold[val_rows],
        val_predicted=predicted,
        seconds=time.monotonic() - started,
        tuning={
            "scorer_weights": weights,
            "weight_search": {
                "candidates": len(objective),
                "best": max(objective, default=None),
                "papers": len(tune_rows),
            },
            "thresholds": spec,
        },
    )


def _out_of_fold(model, net, tokenizer, texts, targets, pooled, history, config):
    """Each paper's scorer outputs from a head, kNN bank and SVM that never saw it."""
    import torch

    from petal_labeller.model.splits import kfold_indices

    trained_head = copy.deepcopy(net.head.state_dict())
    best_epoch = min(history, key=lambda h: h["val_loss"])["epoch"]
    inner = config.replace(epochs=best_epoch, patience=0, max_steps=0)
    parts: dict[str, np.ndarray] = {}
    for inner_train, inner_test in kfold_indices(len(texts), config.tune_folds, config.seed):
        net.head.reset_parameters()
        fine_tune(net, tokenizer, texts, targets, inner_train, inner_test, inner, progress=False)
        with torch.inference_mode():
            logits = net.head(torch.from_numpy(pooled[inner_test])).numpy()
        model.knn_bank = _normalise(pooled[inner_train])
        model.knn_labels = targets[inner_train]
        if model.settings["scorers"].get("tfidf"):
            model.tfidf = _fit_tfidf([texts[i] for i in inner_train], targets[inner_train], config)
        fold = model.components([texts[i] for i in inner_test], pooled[inner_test], logits)
        for name, values in fold.items():
            parts.setdefault(name, np.zeros((len(texts), values.shape[1]), np.float32))
            parts[name][inner_test] = values
    net.head.load_state_dict(trained_head)
    net.eval()
    return parts


def _fit_tfidf(texts: list[str], targets: np.ndarray, config: TrainConfig):
    from petal_labeller.model.baseline import fit_tfidf_svm_texts, make_scorer

    spec, arrays = fit_tfidf_svm_texts(
        texts, targets, config.tfidf_c, config.tfidf_scale, char=config.tfidf_char
    )
    scorer = make_scorer(spec, arrays)
    scorer.export = (spec, arrays)  # what save_model writes
    return scorer


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )


def save_model(trained: TrainedModel, model_dir: Path, card: dict[str, Any]) -> Path:
    """Write the artefact folder (see artefact.py for the layout)."""
    import torch
    from safetensors.torch import save_file

    model = trained.model
    model_dir.mkdir(parents=True, exist_ok=True)
    model.net.encoder.save_pretrained(model_dir, safe_serialization=True)
    model.tokenizer.save_pretrained(model_dir)
    if model.settings["scorers"].get("head"):
        head = {k: v.detach().contiguous() for k, v in model.net.head.state_dict().items()}
        save_file(head, str(model_dir / "head.safetensors"))
    if model.stacked:
        from petal_labeller.model.stacking import save_stack

        save_stack(model, model_dir)
    if model.settings["scorers"].get("knn"):
        save_file(
            {
                "embeddings": torch.from_numpy(model.knn_bank),
                "labels": torch.from_numpy(model.knn_labels.astype(np.uint8)),
            },
            str(model_dir / "knn.safetensors"),
        )
    if model.settings["scorers"].get("tfidf"):
        spec, arrays = model.tfidf.export
        write_json(model_dir / "tfidf.json", spec)
        save_file(
            {k: torch.from_numpy(v) for k, v in arrays.items()},
            str(model_dir / "tfidf.safetensors"),
        )
    write_json(model_dir / "labeller.json", model.settings)
    write_json(model_dir / "labels.json", model.labels)
    thresholds = trained.tuning["thresholds"]
    write_json(model_dir / "thresholds.json", thresholds)
    metrics = {"validation": trained.validation, "history": trained.history, **trained.tuning}
    write_json(model_dir / "metrics.json", metrics)
    write_json(model_dir / "model_card.json", {**card, "metrics": trained.validation})
    add_runtime_record(model_dir)
    return model_dir


def train_artefact(
    papers_path: str | Path,
    taxonomy_path: str | Path,
    output_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    version: str | None = None,
    report: bool = True,
) -> Path:
    """Train on a labelled JSONL + taxonomy; write `output_dir/model.tar.gz` and its evaluation."""
    config = config or preset("default")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    taxonomy = Taxonomy.load(taxonomy_path)
    papers = load_labelled(papers_path, taxonomy)
    trained = fit(papers, taxonomy, config, progress=progress)
    now = dt.datetime.now(dt.UTC)
    card = {
        "name": "petal-labeller",
        "version": version or now.strftime("%Y%m%d%H%M%S"),
        "created": now.isoformat(timespec="seconds"),
        "base_model": config.base_model,
        "preset": config.preset,
        "training_data": {
            "papers_path": str(papers_path),
            "papers_sha256": file_sha256(papers_path),
            "taxonomy_sha256": file_sha256(taxonomy_path),
            "papers": len(papers),
            "labels": len(taxonomy),
        },
        "training_seconds": round(trained.seconds, 1),
        "config": config.to_dict(),
        "scorers": trained.model.settings["scorers"],
    }
    with tempfile.TemporaryDirectory(prefix="petal-artefact-", dir=output_dir) as staging:
        save_model(trained, Path(staging), card)
        tar_path = pack(staging, output_dir / ARTEFACT_NAME)
    if report:
        from petal_labeller.model.report import write_training_report

        write_training_report(trained, taxonomy, output_dir / "evaluation")
    log.info("wrote %s in %.0f s", tar_path, trained.seconds)
    return tar_path
