"""Does the fast precision keep every score within 0.01 of fp32 on the shared set? (issue 15 item 2)

    python -m benchmarks.precision [--model model.tar.gz] [--papers FILE] [--limit N]

Labels every shared paper twice through the SageMaker handlers (`input_fn` ->
`predict_fn` -> `output_fn`, what production runs): at fp32 and at the
precision `auto` picks on this CPU (bf16 where the CPU has native bf16). Reports
the largest score change over every label of every paper, how many
(paper, label) scores move by 0.01 or more, on how many papers and labels, and
how many papers get a different label set. It measures; it changes nothing.
Without --model it trains the default recipe on the shared data first (minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "precision.json"
TOLERANCE = 0.01


def label_all(model, body: bytes) -> tuple[np.ndarray, list[list[str]], float]:
    """Scores (papers x labels, model order), chosen labels, seconds."""
    from benchmarks.inference import ours

    started = time.perf_counter()
    lines = [json.loads(line) for line in ours(model, body).splitlines()]
    seconds = time.perf_counter() - started
    scores = np.array([[line["scores"][label] for label in model.label_ids] for line in lines])
    return scores, [sorted(line["labels"]) for line in lines], seconds


def main(argv: list[str] | None = None) -> dict:
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.model.artefact import model_folder
    from petal_labeller.runtime.handlers import model_fn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model.tar.gz or folder (default: train one)")
    parser.add_argument("--papers", type=Path, default=SHARED_DATA_DIR / "labelled_papers.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="first N papers only")
    args = parser.parse_args(argv)

    lines = [line for line in args.papers.read_bytes().splitlines() if line.strip()]
    body = b"\n".join(lines[: args.limit]) + b"\n"
    with tempfile.TemporaryDirectory(prefix="petal-bench-") as tmp:
        from benchmarks.inference import default_model

        model_path = args.model or default_model(Path(tmp))
        with model_folder(model_path) as folder:
            exact_model = model_fn(folder, precision="fp32")
            fast_model = model_fn(folder)
    exact, exact_labels, exact_s = label_all(exact_model, body)
    fast, fast_labels, fast_s = label_all(fast_model, body)
    change = np.abs(fast - exact)
    over = change >= TOLERANCE
    worst_paper, worst_label = np.unravel_index(int(change.argmax()), change.shape)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "model": str(args.model) if args.model else "default recipe, trained here",
        "papers": int(exact.shape[0]),
        "labels": int(exact.shape[1]),
        "fast_precision": fast_model.precision,
        "seconds": {"fp32": exact_s, fast_model.precision: fast_s},
        "max_abs_change": float(change.max()),
        "worst": {
            "paper_line": int(worst_paper) + 1,
            "label": exact_model.label_ids[worst_label],
            "fp32": float(exact[worst_paper, worst_label]),
            "fast": float(fast[worst_paper, worst_label]),
        },
        "scores_over_tolerance": int(over.sum()),
        "papers_with_a_score_over": int(over.any(axis=1).sum()),
        "labels_with_a_score_over": int(over.any(axis=0).sum()),
        "papers_with_other_labels": sum(
            a != b for a, b in zip(exact_labels, fast_labels, strict=True)
        ),
        "p99_abs_change": float(np.quantile(change, 0.99)),
        "within_tolerance": bool(change.max() < TOLERANCE),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
