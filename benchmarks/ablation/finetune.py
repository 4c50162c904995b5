"""Fine-tune MiniLM (mean pooling + linear head) on one outer fold, to see what it adds.

Too slow on 2 shared cores to run for all folds inside the inner-CV stacker, so it
runs on the folds asked for and writes its test-fold scores to the cache; the
ablation table reports it on those folds only. Early stopping uses a validation
tenth of the training fold, never the test fold.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from .data import cache_dir, folds, load
from .embeddings import minilm_path, paper_text
from .metrics import ranking_metrics


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


def run_fold(
    fold: int,
    epochs: int,
    loss_name: str,
    max_length: int,
    batch_size: int,
    head_lr: float,
    body_lr: float,
):
    import torch
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(0)
    data = load()
    train, test = folds(len(data.papers))[fold]
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(train)
    n_val = len(train) // 10
    val, fit = shuffled[:n_val], shuffled[n_val:]
    texts = [paper_text(p, "title_abstract_venue") for p in data.papers]
    y = torch.tensor(data.y)

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    body = AutoModel.from_pretrained(minilm_path())
    head = torch.nn.Linear(body.config.hidden_size, y.shape[1])
    prior = y[fit].mean(0).clamp(1e-3, 1 - 1e-3)
    with (
        torch.no_grad()
    ):  # start the head at the label prior so early steps learn content, not frequency
        head.bias.copy_(torch.log(prior / (1 - prior)))
        head.weight.normal_(0, 0.01)

    def forward(index):
        batch = tokenizer(
            [texts[i] for i in index],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        hidden = body(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return head(pooled)

    def predict(index):
        body.eval()
        out = []
        with torch.inference_mode():
            for s in range(0, len(index), 64):
                out.append(torch.sigmoid(forward(index[s : s + 64])))
        body.train()
        return torch.cat(out).numpy()

    bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def loss_fn(logits, targets):
        if loss_name == "asl":
            return asymmetric_loss(logits, targets)
        return bce(logits, targets).sum(1).mean()

    optimizer = torch.optim.AdamW(
        [
            {"params": body.parameters(), "lr": body_lr},
            {"params": head.parameters(), "lr": head_lr},
        ],
        weight_decay=0.01,
    )
    steps = epochs * int(np.ceil(len(fit) / batch_size))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)
    body.train()
    best, best_state, history = -1.0, None, []
    started = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(fit)
        total = 0.0
        for s in range(0, len(order), batch_size):
            index = order[s : s + batch_size]
            loss = loss_fn(forward(index), y[index])
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            total += float(loss) * len(index)
        val_scores = predict(val)
        val_metrics = ranking_metrics(data.y[val], val_scores)
        val_loss = float(
            bce(torch.logit(torch.tensor(val_scores).clamp(1e-6, 1 - 1e-6)), y[val]).sum(1).mean()
        )
        # Early stopping on validation nDCG@3 (ranking is what we are judged on)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / len(fit),
                "val_loss": val_loss,
                **val_metrics,
                "elapsed_s": time.perf_counter() - started,
            }
        )
        print(json.dumps(history[-1]), flush=True)
        if val_metrics["nDCG@3"] > best:
            best = val_metrics["nDCG@3"]
            best_state = (
                {k: v.clone() for k, v in body.state_dict().items()},
                {k: v.clone() for k, v in head.state_dict().items()},
            )
        elif epoch + 1 - max(h["epoch"] for h in history if h["nDCG@3"] == best) >= 3:
            break
    body.load_state_dict(best_state[0])
    head.load_state_dict(best_state[1])
    test_scores = predict(test)
    result = {
        "fold": fold,
        "loss": loss_name,
        "history": history,
        "test": ranking_metrics(data.y[test], test_scores),
        "train_s": time.perf_counter() - started,
    }
    print(json.dumps(result["test"]), flush=True)
    tag = f"finetune_{loss_name}_fold{fold}_{data.digest}"
    np.save(cache_dir() / f"{tag}.npy", test_scores)
    (cache_dir() / f"{tag}.json").write_text(json.dumps(result, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--loss", choices=["bce", "asl"], default="asl")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--body-lr", type=float, default=5e-5)
    args = parser.parse_args()
    for fold in args.folds:
        run_fold(
            fold,
            args.epochs,
            args.loss,
            args.max_length,
            args.batch_size,
            args.head_lr,
            args.body_lr,
        )


if __name__ == "__main__":
    main()
