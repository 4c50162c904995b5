"""Inference throughput: seed-style handler vs our batch path vs the raw forward limit.

    python -m benchmarks.inference --model DIR/model.tar.gz --papers PAPERS.jsonl

Same artefact, same papers, same run:
  (a) seed-style: one paper per request, tokenizer loaded on every call, padded
      to 256 tokens, fp32 (how the original handler worked);
  (b) ours: petal_labeller.runtime.handlers' input_fn -> predict_fn -> output_fn over one
      jsonlines body (tokenizer loaded once, length-sorted batches, fast CPU path);
  (c) raw forward: pre-tokenized length-sorted batches through the network at
      (b)'s precision, nothing else: the limit on this machine.
(b) and (c) alternate `--repeats` times; the ratio b/c is of their medians.
It also times (b) stage by stage (`stages`: decode + validate, texts, tokenize,
pad + forward, each base scorer, stack + cap, labels + result objects, JSON),
and checks (b)'s scores against the fp32 model (largest difference, P@k).
Without --model it trains the default recipe on the shared data first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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


def stages(model, body: bytes) -> dict[str, float]:
    """Seconds of each stage of (b), run one after the other through the model's own
    methods (what `predict_fn` calls), so the time around the encoder is visible."""
    from petal_labeller.runtime.handlers import input_fn, output_fn
    from petal_labeller.runtime.jsonlines import JSONLINES

    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        clock.append(time.perf_counter())
        seconds[name] = seconds.get(name, 0.0) + clock[-1] - clock[-2]

    items = input_fn(body, JSONLINES)
    records = [item["record"] for item in items if "record" in item]
    lap("input_fn: decode + validate")
    texts = model.texts(records)
    lap("texts")
    model.tokenizer(texts, truncation=True, max_length=model.max_length)
    lap("tokenize")
    pooled, logits = model.encode(texts)  # tokenizes again: subtracted below
    lap("encode")
    seconds["pad + forward"] = seconds.pop("encode") - seconds["tokenize"]
    if model.stacked:
        parts = {}
        for name, weight in model.settings["scorers"].items():
            if weight:
                parts[name] = model.stack_component(name, pooled, records)
                lap(f"base scorer: {name}")
    else:
        parts = model.components(texts, pooled, logits, records)
        lap("base scorers")
    scores = model.blend(parts)
    lap("stack + hierarchy cap")
    results = model.results(records, scores)
    lap("labels + result objects")
    output_fn(results, JSONLINES)
    lap("output_fn: JSON")
    return seconds


def run(model_path: Path, papers_path: Path, limit: int, repeats: int, seed_papers: int) -> dict:
    from petal_labeller.model.artefact import model_folder
    from petal_labeller.model.metrics import precision_at_k
    from petal_labeller.runtime.handlers import model_fn

    lines = [line for line in papers_path.read_bytes().splitlines() if line.strip()][-limit:]
    records = [json.loads(line) for line in lines]
    body = b"\n".join(lines) + b"\n"
    n = len(records)
    with model_folder(model_path) as folder:
        fp32 = model_fn(folder, precision="fp32")
        fast = model_fn(folder)
        started = time.perf_counter()
        seed_style(folder, fp32, records[:seed_papers])
        seconds_a = (time.perf_counter() - started) * n / max(1, seed_papers)
        # (b) and (c) alternate, so a burst of load on the shared machine falls on
        # both; medians of `repeats` each.
        samples: dict[str, list[float]] = {"b": [], "c": [], "b32": []}
        stage_samples: list[dict[str, float]] = []
        for _ in range(repeats):
            started = time.perf_counter()
            output = ours(fast, body)
            samples["b"].append(time.perf_counter() - started)
            samples["c"].append(raw_forward(fast, records))
            if fast.precision != "fp32":
                started = time.perf_counter()
                ours(fp32, body)
                samples["b32"].append(time.perf_counter() - started)
            stage_samples.append(stages(fast, body))
    seconds_b, seconds_c = statistics.median(samples["b"]), statistics.median(samples["c"])
    seconds_b32 = statistics.median(samples["b32"]) if samples["b32"] else seconds_b
    exact = fp32.score(records)
    approx = np.array(
        [
            [line["scores"][label] for label in fast.label_ids]
            for line in map(json.loads, output.splitlines())
        ]
    )
    stage_median = {
        name: round(statistics.median(s[name] for s in stage_samples), 3)
        for name in stage_samples[0]
    }
    result = {
        "papers": n,
        "machine": f"{platform.machine()}, {_cpu_name()}, {os.cpu_count()} cores visible",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": _torch_threads(),
        "precision_b": fast.precision,
        "repeats": repeats,
        "seconds": {k: [round(x, 2) for x in v] for k, v in samples.items() if v},
        "papers_per_s": {
            "a_seed_style": n / seconds_a,
            "b_ours": n / seconds_b,
            "b_ours_fp32": n / seconds_b32,
            "c_raw_forward": n / seconds_c,
        },
        "stages_median_s": stage_median,
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


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


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
    parser.add_argument("--limit", type=int, default=256, help="papers to label (the last N)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed-papers", type=int, default=32, help="papers for (a), scaled up")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="petal-bench-") as tmp:
        model = args.model or default_model(Path(tmp))
        result = run(model, args.papers, args.limit, args.repeats, args.seed_papers)
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if all(result["targets_met"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
