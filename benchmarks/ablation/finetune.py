"""Fine-tune MiniLM on one outer fold, to see whether it learns and what it adds.

Recipe: linear probe, then fine-tune (LP-FT, Kumar et al. 2022). A head fit first on
frozen mean-pooled embeddings (cheap: hundreds of epochs in seconds) starts the
fine-tuning from a sensible solution, so the few epochs 2 CPU cores can afford move the
encoder instead of spending them teaching a random head the label prior. Early stopping
uses a validation tenth of the training fold, never the test fold.

Too slow on 2 shared cores for every fold inside the inner-CV stacker, so it runs on the
folds asked for and writes its test-fold scores and a JSON report to the cache. Reports,
on the test fold: (a) the LP head on the frozen encoder, (b) the fine-tuned model,
(c) kNN label transfer (k=20, T=0.1) over frozen vs fine-tuned embeddings.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .data import cache_dir, folds, load
from .embeddings import minilm_path, paper_text
from .metrics import ranking_metrics

STATUS = Path("/tmp/team/finetune-status.txt")


def log(message: str) -> None:
    """Print and append to the team status file, so others can see how far a hold is."""
    line = f"{datetime.now(UTC):%H:%M:%S} {message}"
    print(line, flush=True)
    if STATUS.parent.exists():
        with STATUS.open("a") as handle:
            handle.write(line + "\n")


def asymmetric_loss(
    logits, targets, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05
):
    """Asymmetric loss (Ridnik et al. 2021): down-weights the many easy negatives."""
    import torch

    p = torch.sigmoid(logits)
    p_neg = (p - clip).clamp(min=0)
    loss_pos = targets * (1 - p) ** gamma_pos * torch.log(p.clamp(min=1e-8))
    loss_neg = (1 - targets) * p_neg**gamma_neg * torch.log((1 - p_neg).clamp(min=1e-8))
    return -(loss_pos + loss_neg).sum(1).mean()


def similarity_loss(pooled, targets):
    """In-batch cosine of two papers regressed onto the Jaccard overlap of their labels.

    Trains the embedding geometry that kNN label transfer uses (SetFit-style), instead
    of a 131-way head that 454 papers can memorise in a few epochs.
    """
    import torch

    z = torch.nn.functional.normalize(pooled, dim=-1)
    inter = targets @ targets.T
    union = targets.sum(1, keepdim=True) + targets.sum(1) - inter
    jaccard = inter / union.clamp(min=1)
    off = ~torch.eye(len(z), dtype=torch.bool)
    return ((z @ z.T - jaccard)[off] ** 2).mean()


def knn_scores(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, k: int = 20, t: float = 0.1
) -> np.ndarray:
    """The runtime's kNN label transfer over rows `train` of `x` (normalised here: the
    fine-tuned encoder's pooled output is not unit-length) for rows `test`."""
    from petal_labeller.runtime.scorers import knn_scores as transfer

    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-9)
    return transfer(x[test], x[train], y[train], k, t)


class Encoder:
    """MiniLM with mean pooling over pre-tokenised papers, batched by length."""

    def __init__(self, texts: list[str], max_length: int, bf16: bool):
        import torch
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        encoded = tokenizer(texts, truncation=True, max_length=max_length)
        self.ids = [torch.tensor(ids) for ids in encoded["input_ids"]]
        self.lengths = np.array([len(ids) for ids in self.ids])
        self.pad = tokenizer.pad_token_id
        self.body = AutoModel.from_pretrained(minilm_path())
        self.bf16 = bf16

    def pooled(self, index: np.ndarray):
        import torch

        ids = torch.nn.utils.rnn.pad_sequence(
            [self.ids[i] for i in index], batch_first=True, padding_value=self.pad
        )
        mask = (ids != self.pad).long()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            hidden = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
        hidden = hidden.float()
        weights = mask.unsqueeze(-1).float()
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def batches(self, index: np.ndarray, size: int, rng=None) -> list[np.ndarray]:
        """Papers of similar length together (less padding); batch order shuffled if rng."""
        ordered = index[np.argsort(self.lengths[index], kind="stable")]
        chunks = [ordered[s : s + size] for s in range(0, len(ordered), size)]
        if rng is not None:
            chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        return chunks

    def embed(self, index: np.ndarray, size: int = 64) -> np.ndarray:
        import torch

        self.body.eval()
        out = np.zeros((len(index), self.body.config.hidden_size), dtype=np.float32)
        position = {paper: row for row, paper in enumerate(index)}
        with torch.inference_mode():
            for chunk in self.batches(np.asarray(index), size):
                rows = [position[p] for p in chunk]
                out[rows] = self.pooled(chunk).numpy()
        return out


def run_fold(fold: int, args: argparse.Namespace) -> dict:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    data = load()
    train, test = folds(len(data.papers))[fold]
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(train)
    n_val = len(train) // 10
    val, fit = shuffled[:n_val], shuffled[n_val:]
    texts = [paper_text(p, "title_abstract") for p in data.papers]
    y = torch.tensor(data.y)
    enc = Encoder(texts, args.max_length, args.bf16)
    started = time.perf_counter()
    report: dict = {"fold": fold, "args": vars(args), "test": {}}

    bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def loss_fn(logits, targets):
        if args.loss == "jaccard":
            return bce(logits, targets).sum(1).mean()  # the LP head only
        if args.loss == "asl":
            return asymmetric_loss(logits, targets)
        return bce(logits, targets).sum(1).mean()

    def val_metrics(scores: np.ndarray) -> dict[str, float]:
        """Ranking metrics and BCE loss of logits on the validation tenth."""
        loss = bce(torch.tensor(scores), y[val]).sum(1).mean().item()
        return {**ranking_metrics(data.gold[val], scores), "loss": loss}

    # Frozen embeddings of every paper: the LP head's input and the frozen kNN baseline.
    frozen = enc.embed(np.arange(len(texts)))
    report["encode_s"] = time.perf_counter() - started
    log(f"fold {fold}: frozen encode of {len(texts)} papers {report['encode_s']:.0f}s")
    report["test"]["knn_frozen"] = ranking_metrics(
        data.y[test], knn_scores(frozen, data.y, train, test)
    )

    # (a) Linear probe: the head alone on frozen embeddings, early-stopped on validation.
    head = torch.nn.Linear(frozen.shape[1], y.shape[1])
    prior = y[fit].mean(0).clamp(1e-3, 1 - 1e-3)
    with torch.no_grad():  # start at the label prior so the head learns content, not frequency
        head.bias.copy_(torch.log(prior / (1 - prior)))
        head.weight.zero_()
    x = torch.tensor(frozen)
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.lp_lr, weight_decay=args.lp_wd)
    best, best_state, best_epoch = -1.0, None, 0
    for epoch in range(1, args.lp_epochs + 1):
        for chunk in np.array_split(rng.permutation(fit), max(1, len(fit) // 32)):
            loss = loss_fn(head(x[chunk]), y[chunk])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        with torch.no_grad():
            score = val_metrics(head(x[val]).numpy())["nDCG@3"]
        if score > best:
            best, best_epoch = score, epoch
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        elif epoch - best_epoch >= args.lp_patience:
            break
    head.load_state_dict(best_state)
    with torch.no_grad():
        report["test"]["lp_head"] = ranking_metrics(data.gold[test], head(x[test]).numpy())
        report["lp"] = {"epochs_run": epoch, "best_epoch": best_epoch, "val_nDCG@3": best}
    log(f"fold {fold}: LP best epoch {best_epoch}/{epoch} val nDCG@3 {best:.3f}")
    log(f"fold {fold}: test knn_frozen {report['test']['knn_frozen']}")
    log(f"fold {fold}: test lp_head {report['test']['lp_head']}")

    # (b) Fine-tune: body (top `train_layers` layers, all by default) + the LP head.
    layers = enc.body.encoder.layer
    for param in enc.body.parameters():
        param.requires_grad = False
    for layer in list(layers)[len(layers) - args.train_layers :]:
        for param in layer.parameters():
            param.requires_grad = True
    if args.train_layers >= len(layers):
        for param in enc.body.embeddings.parameters():
            param.requires_grad = True
    body_params = [p for p in enc.body.parameters() if p.requires_grad]
    groups = [{"params": body_params, "lr": args.body_lr}]
    if args.loss != "jaccard":  # the similarity objective leaves the LP head as it is
        groups.append({"params": list(head.parameters()), "lr": args.head_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    steps_per_epoch = int(np.ceil(len(fit) / args.batch_size))
    total_steps = args.epochs * steps_per_epoch
    warmup = max(1, int(args.warmup * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(  # short warmup, then linear decay to 0
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / total_steps)),
    )

    def validate() -> dict[str, float]:
        """Head scores on validation; for the similarity objective, kNN from fit papers."""
        if args.loss != "jaccard":
            with torch.no_grad():
                return val_metrics(head(torch.tensor(enc.embed(val))).numpy())
        index = np.concatenate([fit, val])
        scores = knn_scores(
            enc.embed(index), data.y[index], np.arange(len(fit)), np.arange(len(fit), len(index))
        )
        return {**ranking_metrics(data.gold[val], scores), "loss": float("nan")}

    base = validate()
    best, best_epoch = base["nDCG@3"], 0
    best_state = (
        {k: v.clone() for k, v in enc.body.state_dict().items()},
        {k: v.clone() for k, v in head.state_dict().items()},
    )
    history = [{"epoch": 0, **base}]
    log(f"fold {fold}: FT epoch 0 val P@1 {base['P@1']:.3f} nDCG@3 {base['nDCG@3']:.3f}")
    ft_started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        epoch_started = time.perf_counter()
        enc.body.train()
        total = 0.0
        for chunk in enc.batches(fit, args.batch_size, rng):
            pooled = enc.pooled(chunk)
            if args.loss == "jaccard":
                loss = similarity_loss(pooled, y[chunk])
            else:
                loss = loss_fn(head(pooled), y[chunk])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(body_params + list(head.parameters()), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            total += loss.item() * len(chunk)
        train_s = time.perf_counter() - epoch_started
        metrics = validate()
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / len(fit),
                **metrics,
                "train_s": train_s,
                "epoch_s": time.perf_counter() - epoch_started,
            }
        )
        log(
            f"fold {fold}: FT epoch {epoch} loss {total / len(fit):.3f} val loss "
            f"{metrics['loss']:.3f} P@1 {metrics['P@1']:.3f} nDCG@3 {metrics['nDCG@3']:.3f} "
            f"({train_s:.0f}s train)"
        )
        if metrics["nDCG@3"] > best:
            best, best_epoch = metrics["nDCG@3"], epoch
            best_state = (
                {k: v.clone() for k, v in enc.body.state_dict().items()},
                {k: v.clone() for k, v in head.state_dict().items()},
            )
        elif epoch - best_epoch >= args.patience:
            break
        spent = time.perf_counter() - started
        if spent + history[-1]["epoch_s"] + 120 > args.time_budget:
            log(f"fold {fold}: stopping at the time budget ({spent:.0f}s spent)")
            break
    enc.body.load_state_dict(best_state[0])
    head.load_state_dict(best_state[1])
    report["ft"] = {"best_epoch": best_epoch, "history": history}
    report["ft_s"] = time.perf_counter() - ft_started

    tuned = enc.embed(np.arange(len(texts)))
    with torch.no_grad():
        test_scores = head(torch.tensor(tuned[test])).numpy()
    report["test"]["ft_model"] = ranking_metrics(data.gold[test], test_scores)
    report["test"]["knn_ft"] = ranking_metrics(
        data.gold[test], knn_scores(tuned, data.y, train, test)
    )
    report["total_s"] = time.perf_counter() - started
    for name in ("ft_model", "knn_ft"):
        log(f"fold {fold}: test {name} {report['test'][name]}")
    log(f"fold {fold}: done, best FT epoch {best_epoch}, total {report['total_s']:.0f}s")
    tag = (
        f"finetune_lpft_{args.loss}_{args.max_length}_lr{args.body_lr:g}"
        f"_l{args.train_layers}_fold{fold}_{data.digest}"
    )
    np.save(cache_dir() / f"{tag}.npy", test_scores)
    (cache_dir() / f"{tag}.json").write_text(json.dumps(report, indent=1))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folds", type=int, nargs="+", default=[0])
    parser.add_argument("--loss", choices=["bce", "asl", "jaccard"], default="bce")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lp-lr", type=float, default=3e-3)
    parser.add_argument("--lp-wd", type=float, default=1e-4)
    parser.add_argument("--lp-epochs", type=int, default=400)
    parser.add_argument("--lp-patience", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=12, help="fine-tuning epochs at most")
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=0.05, help="fraction of FT steps")
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--body-lr", type=float, default=3e-5)
    parser.add_argument("--train-layers", type=int, default=6, help="top encoder layers tuned")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 autocast (slower without native bf16)"
    )
    parser.add_argument(
        "--time-budget", type=float, default=1500.0, help="seconds per fold, stop epochs before"
    )
    args = parser.parse_args()
    for fold in args.folds:
        run_fold(fold, args)


if __name__ == "__main__":
    main()
