"""Inference throughput: seed-style handler vs our batch path vs the raw forward limit.

    python -m benchmarks.inference --model DIR/model.tar.gz --papers PAPERS.jsonl

Same artefact, same papers, same run:
  (a) seed-style: one paper per request, tokenizer loaded on every call, padded
      to 256 tokens, fp32 (how the original handler worked);
  (b) ours: petal_labeller.runtime.handlers' input_fn -> predict_fn -> output_fn over one
      jsonlines body (tokenizer loaded once, length-sorted batches, fast CPU path);
  (c) raw forward: pre-tokenized length-sorted batches through the network at
      (b)'s precision, nothing else: the limit on this machine.
It also checks (b)'s scores against the fp32 model (largest difference, P@k).
Without --model it trains the default recipe on the shared data first.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"
TARGET_SPEEDUP = 4.0
TARGET_OF_LIMIT = 0.9


def seed_style(model_dir: Path, model, records: list[dict]) -> np.ndarray:
    """(a): a fresh tokenizer per request, one paper, padding to max length, fp32."""
    import torch
    from transformers import AutoTokenizer

    from petal_labeller.runtime.scorers import sigmoid
    from petal_labeller.runtime.text import paper_text

    rows = []
    for record in records:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        features = tokenizer(
            paper_text(record),
            truncation=True,
            max_length=256,
            padding="max_length",
            return_tensors="pt",
        )
        with torch.inference_mode():
            _, logits = model.net(features["input_ids"], features["attention_mask"])
        rows.append(sigmoid(logits.numpy())[0])
    return np.array(rows)


def ours(model, body: bytes) -> str:
    """(b): exactly what SageMaker calls."""
    from petal_labeller.runtime.handlers import input_fn, output_fn, predict_fn
    from petal_labeller.runtime.jsonlines import JSONLINES

    return output_fn(predict_fn(input_fn(body, JSONLINES), model), JSONLINES)


def raw_forward(model, records: list[dict]) -> float:
    """(c): seconds for the network alone over pre-tokenized, pre-padded, sorted batches."""
    import torch

    encoded = model.tokenizer(model.texts(records), truncation=True, max_length=model.max_length)
    order = sorted(range(len(records)), key=lambda i: len(encoded["input_ids"][i]))
    batches = [
        model.tokenizer.pad(
            {
                "input_ids": [encoded["input_ids"][i] for i in order[s : s + model.batch_size]],
                "attention_mask": [
                    encoded["attention_mask"][i] for i in order[s : s + model.batch_size]
                ],
            },
            return_tensors="pt",
        )
        for s in range(0, len(order), model.batch_size)
    ]
    started = time.perf_counter()
    with torch.inference_mode():
        for features in batches:
            with model._autocast():
                pooled = model.net.pool(features["input_ids"], features["attention_mask"])
            model.net.head(pooled.float())
    return time.perf_counter() - started


def timed(fn, *args, repeats: int = 2):
    """Best of `repeats` (the machine is shared; the best run is the least disturbed)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - started)
    return best, result


def run(model_path: Path, papers_path: Path, limit: int, repeats: int) -> dict:
    from petal_labeller.model.artefact import model_folder
    from petal_labeller.model.metrics import precision_at_k
    from petal_labeller.runtime.handlers import model_fn

    lines = [line for line in papers_path.read_bytes().splitlines() if line.strip()][:limit]
    records = [json.loads(line) for line in lines]
    body = b"\n".join(lines) + b"\n"
    n = len(records)
    with model_folder(model_path) as folder:
        fp32 = model_fn(folder, precision="fp32")
        fast = model_fn(folder)
        seconds_a, _ = timed(seed_style, folder, fp32, records, repeats=1)
        # (b) and (c) alternate, best of `repeats` each, so a burst of load on
        # the shared machine cannot favour one of them.
        seconds_b = seconds_c = seconds_b32 = float("inf")
        for _ in range(repeats):
            elapsed, output = timed(ours, fast, body, repeats=1)
            seconds_b = min(seconds_b, elapsed)
            seconds_c = min(seconds_c, raw_forward(fast, records))
            seconds_b32 = min(seconds_b32, timed(ours, fp32, body, repeats=1)[0])
    exact = fp32.score(records)
    approx = np.array(
        [
            [line["scores"][label] for label in fast.label_ids]
            for line in map(json.loads, output.splitlines())
        ]
    )
    result = {
        "papers": n,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{__import__('os').cpu_count()} cores visible",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "precision_b": fast.precision,
        "papers_per_s": {
            "a_seed_style": n / seconds_a,
            "b_ours": n / seconds_b,
            "b_ours_fp32": n / seconds_b32,
            "c_raw_forward": n / seconds_c,
        },
        "max_abs_score_change_vs_fp32": float(np.abs(exact - approx).max()),
    }
    result["b_over_a"] = result["papers_per_s"]["b_ours"] / result["papers_per_s"]["a_seed_style"]
    result["b_over_c"] = result["papers_per_s"]["b_ours"] / result["papers_per_s"]["c_raw_forward"]
    if all("labels" in r for r in records):
        gold = np.array(
            [[label in r["labels"] for label in fp32.label_ids] for r in records], float
        )
        result["P@k_fp32"] = {k: round(precision_at_k(exact, gold, k), 4) for k in (1, 3, 5)}
        result["P@k_ours"] = {k: round(precision_at_k(approx, gold, k), 4) for k in (1, 3, 5)}
    result["targets_met"] = {
        "b >= 4x a": result["b_over_a"] >= TARGET_SPEEDUP,
        "b >= 90% of c": result["b_over_c"] >= TARGET_OF_LIMIT,
        "scores within 0.01": result["max_abs_score_change_vs_fp32"] < 0.01,
    }
    if "P@k_fp32" in result:
        # "Unchanged to two decimals": each P@k moves by less than half a unit
        # in the second decimal (one swapped near-tie can still cross a rounding edge).
        result["targets_met"]["P@k within 0.005"] = all(
            abs(result["P@k_ours"][k] - result["P@k_fp32"][k]) < 0.005 for k in (1, 3, 5)
        )
    return result


def default_model(workdir: Path) -> Path:
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.model.train import train_artefact

    return train_artefact(
        SHARED_DATA_DIR / "labelled_papers.jsonl", SHARED_DATA_DIR / "taxonomy.json", workdir
    )


def main(argv: list[str] | None = None) -> int:
    from petal_labeller.config import SHARED_DATA_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model.tar.gz or folder (default: train one)")
    parser.add_argument("--papers", type=Path, default=SHARED_DATA_DIR / "labelled_papers.jsonl")
    parser.add_argument("--limit", type=int, default=126, help="papers to label")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="petal-bench-") as tmp:
        model = args.model or default_model(Path(tmp))
        result = run(model, args.papers, args.limit, args.repeats)
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if all(result["targets_met"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
