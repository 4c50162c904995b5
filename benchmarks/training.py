"""Local training time of the production recipe, phase by phase (issue 15 item 5).

    python -m benchmarks.training [--papers FILE] [--output DIR]

What the training DAG's `train_local` task runs (`train_artefact(..., report=False)`
with the default preset) on the shared papers, in this process, with a wall
clock around each phase: loading the data, loading the frozen encoder,
embedding papers and label names, fitting the TF-IDF vectorizers, fitting the
linear SVMs (one per label, in each of the inner folds and the final refit),
scoring the bases on the inner folds' held-out papers, fitting the combiner,
choosing the threshold, writing and packing the artefact. The phases are timed
by wrapping the functions that do them (the real functions still run); what no
phase covers is "other". `--output` keeps the artefact (the production default,
which the inference benchmarks can then take with `--model`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "training.json"


def _timed(seconds: dict[str, float], calls: dict[str, int], phase: str, fn: Callable) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[phase] += time.perf_counter() - started
            calls[phase] += 1

    return wrapper


def _phases() -> list[tuple[Any, str, str]]:
    """(owner, attribute, phase): the functions each phase's time is spent in."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    from petal_labeller.model import stacking, train
    from petal_labeller.runtime.model import LoadedModel

    return [
        (train, "load_labelled", "read + check papers"),
        (stacking, "frozen_network", "load frozen encoder"),
        (stacking, "frozen_embeddings", "embed papers + label names"),
        (TfidfVectorizer, "fit_transform", "TF-IDF vectorise (word + char)"),
        (LinearSVC, "fit", "linear SVMs"),
        (LoadedModel, "components", "score bases on inner held-out folds"),
        (stacking, "fit_combiner", "fit stack combiner"),
        (stacking, "best_global_threshold", "choose threshold"),
        (train, "save_model", "write artefact files"),
        (train, "pack", "pack model.tar.gz"),
    ]


@contextmanager
def phase_clock() -> Iterator[tuple[dict[str, float], dict[str, int]]]:
    """Wrap each phase's function with a wall clock for the duration of the block."""
    seconds: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    patched = []
    for owner, name, phase in _phases():
        original = owner.__dict__[name]
        patched.append((owner, name, original))
        setattr(owner, name, _timed(seconds, calls, phase, original))
    try:
        yield seconds, calls
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def _cpu_name() -> str:
    from benchmarks.inference import _cpu_name as cpu_name

    return cpu_name()


def measure(papers: Path, taxonomy: Path, output: Path) -> dict[str, Any]:
    from petal_labeller.model.train import train_artefact

    cpu_started = time.process_time()
    with phase_clock() as (seconds, calls):
        started = time.perf_counter()
        artefact = train_artefact(papers, taxonomy, output, progress=False, report=False)
        total = time.perf_counter() - started
    phases = {phase: round(s, 2) for phase, s in seconds.items()}
    phases["other"] = round(total - sum(seconds.values()), 2)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {_cpu_name()}, {os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "papers": sum(1 for line in papers.open(encoding="utf-8") if line.strip()),
        "wall_seconds": round(total, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "phases": dict(sorted(phases.items(), key=lambda kv: -kv[1])),
        "calls": dict(calls),
        "artefact": str(artefact),
        "artefact_mb": round(artefact.stat().st_size / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from petal_labeller.config import SHARED_DATA_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=Path, default=SHARED_DATA_DIR / "labelled_papers.jsonl")
    parser.add_argument("--taxonomy", type=Path, default=SHARED_DATA_DIR / "taxonomy.json")
    parser.add_argument("--output", type=Path, help="keep the artefact here (default: discard)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="petal-bench-train-") as tmp:
        report = measure(args.papers, args.taxonomy, args.output or Path(tmp))
    print("| phase | seconds | share |")
    print("|---|---:|---:|")
    for phase, s in report["phases"].items():
        print(f"| {phase} | {s:.1f} | {s / report['wall_seconds']:.0%} |")
    print(json.dumps(report, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
