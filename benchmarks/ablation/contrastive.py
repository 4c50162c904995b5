"""Round three, levers 1, 2, 3 and 5 on the shared folds (`-m benchmarks.ablation.contrastive`).

Lever 1: all-MiniLM-L6-v2 tuned contrastively on each outer fold's training papers only
(sentence-transformers' MultipleNegativesRankingLoss: anchor, a paper sharing its most
specific label, a hard negative carrying a sibling label; the rest of the batch are
more negatives). Lever 2: labels described by their curated papers (each label's
prototype is the mean embedding of the training papers that carry it, alone or with its
path name) instead of the path name alone. Lever 3: the same rows with
all-mpnet-base-v2 as the frozen encoder (`--encoder mpnet`, PETAL_MPNET_DIR). Lever 5:
each row with the hierarchy applied at ranking time (a parent lifted to its best
child's score, or a child capped at its parent's).

Each scorer is measured alone, frozen against tuned, on the same folds: the stack's
inner cross-validation would need one tuning per inner fold (25 a table), since inner
folds must not see their own papers' pairs. Tuned embeddings are cached per fold in
`.petal/cache/ablation/`; results go to `benchmarks/results/contrastive.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import data as data_module
from . import embeddings as emb
from . import scorers as s
from .evaluate import Result, format_row, header, ranking_metrics

KNN_K, KNN_T = 20, 0.1  # the production knobs (TrainConfig)


def most_specific_labels(data: data_module.Dataset, row: int) -> list[str]:
    """The paper's deepest labels: the ones a positive should share."""
    labels = data.papers[row].get("labels") or []
    deepest = max((data.taxonomy.level(label) for label in labels), default=0)
    return [label for label in labels if data.taxonomy.level(label) == deepest]


def training_triplets(
    data: data_module.Dataset, train: np.ndarray, seed: int
) -> list[tuple[str, str, str]]:
    """(anchor, positive, hard negative) texts from the training papers only.

    The positive shares one of the anchor's most specific labels; the negative carries
    a sibling of that label (same parent) but not the label itself, else any paper
    without it: what separates "Manage structural forces" from "Prevent structural failure".
    """
    rng = np.random.default_rng(seed)
    texts = [emb.paper_text(p, "title_abstract") for p in data.papers]
    column = {label: j for j, label in enumerate(data.labels)}
    y = data.y[train] > 0
    triplets = []
    for position, row in enumerate(train):
        choices = most_specific_labels(data, row)
        if not choices:
            continue
        label = choices[rng.integers(len(choices))]
        has = y[:, column[label]]
        positives = np.flatnonzero(has)
        positives = positives[positives != position]
        if not len(positives):
            continue
        parent = data.taxonomy[label].parent
        siblings = [
            column[other]
            for other in data.labels
            if other != label and data.taxonomy[other].parent == parent
        ]
        sibling_papers = np.flatnonzero(y[:, siblings].any(axis=1) & ~has) if siblings else []
        negatives = sibling_papers if len(sibling_papers) else np.flatnonzero(~has)
        triplets.append(
            (
                texts[row],
                texts[train[rng.choice(positives)]],
                texts[train[rng.choice(negatives)]],
            )
        )
    return triplets


def tune(
    triplets: list[tuple[str, str, str]],
    epochs: int,
    batch_size: int,
    lr: float,
    max_length: int,
    seed: int,
    loss_name: str = "mnrl",
):
    """MiniLM tuned on `triplets` with the library's MNRL loss (`triplet`: TripletLoss, which
    sees only each anchor's own negative: in a batch of multi-label papers, "the rest of the
    batch" often shares a level-1 label with the anchor, a false negative for MNRL).

    The loop is ours because SentenceTransformerTrainer needs `datasets` and
    `accelerate`, which nothing else here uses; loss, tokenising and pooling are
    sentence-transformers'.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import (
        MultipleNegativesRankingLoss,
        TripletLoss,
    )
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    model = SentenceTransformer(str(emb.minilm_path()), device="cpu")
    model.max_seq_length = max_length
    loss = (TripletLoss if loss_name == "triplet" else MultipleNegativesRankingLoss)(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * ((len(triplets) + batch_size - 1) // batch_size)
    schedule = get_linear_schedule_with_warmup(optimiser, int(0.1 * steps), steps)
    rng = np.random.default_rng(seed)
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(triplets))
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = [triplets[i] for i in order[start : start + batch_size]]
            features = [model.preprocess([t[part] for t in batch]) for part in range(3)]
            value = loss(features, None)
            optimiser.zero_grad()
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            total += value.item() * len(batch)
        print(f"    epoch {epoch + 1}: {loss_name} {total / len(order):.3f}", flush=True)
    model.eval()
    return model


def tuned_embeddings(
    data: data_module.Dataset, fold: int, train: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray, float]:
    """(papers, label names) encoded by the encoder tuned on fold `fold`; seconds tuning."""
    tag = f"e{args.epochs}_b{args.batch_size}_lr{args.lr:g}_l{args.train_length}"
    if args.loss != "mnrl":
        tag += f"_{args.loss}"
    path = data_module.cache_dir() / f"contrastive_{tag}_fold{fold}_{data.digest}.npz"
    if path.exists():
        saved = np.load(path)
        return saved["papers"], saved["labels"], float(saved["train_s"])
    started = time.perf_counter()
    triplets = training_triplets(data, train, seed=fold)
    model = tune(
        triplets, args.epochs, args.batch_size, args.lr, args.train_length, fold, args.loss
    )
    train_s = time.perf_counter() - started
    print(f"  fold {fold}: tuned on {len(triplets)} triplets in {train_s:.0f} s", flush=True)
    model.max_seq_length = 256
    texts = [emb.paper_text(p, "title_abstract") for p in data.papers]
    papers = model.encode(texts, batch_size=32, normalize_embeddings=True)
    model.max_seq_length = 64
    labels = model.encode(
        emb.label_texts(data, with_ancestors=True), batch_size=64, normalize_embeddings=True
    )
    np.savez(path, papers=papers, labels=labels, train_s=train_s)
    return papers, labels, train_s


def fold_scores(
    x: np.ndarray, names: np.ndarray, data: data_module.Dataset, train, test
) -> dict[str, np.ndarray]:
    """Every scorer of the table on one fold, from one encoder's vectors."""
    from petal_labeller.runtime.scorers import knn_scores

    gold, prototypes = data.gold[train], s.label_prototypes
    return {
        "kNN k=20 T=0.1": knn_scores(x[test], x[train], data.y[train], KNN_K, KNN_T),
        "zero-shot: label path names": x[test] @ names.T,
        "prototypes: mean of the label's papers": x[test] @ prototypes(x[train], gold, None).T,
        "prototypes: papers + path name": x[test] @ prototypes(x[train], gold, names).T,
    }


def hierarchy_posts(data: data_module.Dataset):
    parents = s.parent_index(data)
    return {
        "": None,
        " + parent=max(children)": lambda z: s.propagate_max(z, parents),
        " + child=min(child, parent)": lambda z: s.cap_by_parent(z, parents),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encoder", choices=("minilm", "mpnet"), default="minilm")
    parser.add_argument("--frozen-only", action="store_true", help="skip the tuning (lever 1)")
    parser.add_argument("--folds", type=int, nargs="*", default=list(range(data_module.N_FOLDS)))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--loss", choices=("mnrl", "triplet"), default="mnrl")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--train-length", type=int, default=128)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/contrastive.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    data = data_module.load()
    frozen = emb.paper_embeddings(data, "title_abstract", 256, encoder=args.encoder)
    frozen_names = emb.label_embeddings(data, with_ancestors=True, encoder=args.encoder)
    print(f"# {len(data.papers)} papers, folds {args.folds}, encoder {args.encoder}")
    print(
        f"# {platform.node()}, {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"tuning {args.epochs} epoch(s), batch {args.batch_size}, lr {args.lr:g}, "
        f"{args.train_length} tokens, {args.loss} loss"
    )
    per_row: dict[str, list[dict[str, float]]] = {}
    tuning_s = []
    splits = data_module.folds(len(data.papers))
    posts = hierarchy_posts(data)
    for fold in args.folds:
        train, test = splits[fold]
        encoders = {f"frozen {args.encoder}": (frozen, frozen_names)}
        if not args.frozen_only and args.encoder == "minilm":
            papers, labels, train_s = tuned_embeddings(data, fold, train, args)
            encoders[f"tuned minilm ({args.loss})"] = (papers, labels)
            tuning_s.append(train_s)
        for encoder, (x, names) in encoders.items():
            for scorer, scores in fold_scores(x, names, data, train, test).items():
                for suffix, post in posts.items():
                    final = scores if post is None else post(scores)
                    metrics = ranking_metrics(data.gold[test], final)
                    per_row.setdefault(f"{scorer}, {encoder}{suffix}", []).append(metrics)
    print(header())
    for name, per_fold in per_row.items():
        print(format_row(Result(name, per_fold, 0.0)))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if tuning_s:
        print(f"# tuning: {np.mean(tuning_s):.0f} s a fold (mean of {len(tuning_s)})")
    print(f"# peak memory {peak_mib:.0f} MiB")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {"args": vars(args) | {"output": str(args.output)}, "tuning_s": tuning_s}
            | {"rows": per_row},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
