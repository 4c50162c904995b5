"""A small daily run's `infer_local`: model load vs predict, without and with the artefact cache.

    python -m benchmarks.artefact_cache [--model model.tar.gz] [--papers 90] [--repeats 3]

Each measurement runs in a fresh process, as an Airflow task does, and does
what `infer_local` does, timed step by step (wall and CPU seconds): import the
runtime (torch, transformers), get the artefact's folder, build the model from
it (`model_fn`), label the papers with `predict_file`; load = folder + build.
Three ways to get the folder, in the same run, interleaved, `--repeats` times each:

- **baseline**: the old path, `model_folder` (unpack the tarball into a temporary
  folder, checked) then `model_fn`, folder deleted after;
- **cold**: `load_model(tar, cache=True)` with an empty cache (hash the tarball,
  unpack, check, write the manifest, rename into place, then `model_fn`);
- **warm**: the same again on the same cache, as the next run or task would
  (hash the tarball, re-verify the entry against its manifest, `model_fn`).

Medians are printed with the share of load + predict spent loading; the
import of torch/transformers is shown apart, since every task process pays it
whatever the cache does. Without --model the tiny test model
is trained first (max length 48): pass the production artefact for the
production numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "artefact_cache.json"
WAYS = ("baseline", "cold", "warm")


class Laps:
    """Wall and CPU seconds of consecutive steps (CPU time shows what a loaded machine hides)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.times[f"{name}_s"] = wall - self._wall
        self.times[f"{name}_cpu_s"] = cpu - self._cpu
        self._wall, self._cpu = wall, cpu


def child(way: str, model: Path, papers: Path, out: Path, cache: Path) -> dict:
    """One fresh process: import, unpack or verify, build the model, predict; seconds of each."""
    laps = Laps()
    os.environ["PETAL_ARTEFACT_CACHE"] = str(cache)
    import transformers

    from petal_labeller.model.artefact import model_folder
    from petal_labeller.model.predict import predict_file
    from petal_labeller.pipeline.infer import quiet_progress_bars
    from petal_labeller.runtime.cache import cached_artefact
    from petal_labeller.runtime.handlers import model_fn
    from petal_labeller.runtime.load import load_model  # noqa: F401  torch, transformers

    # transformers imports lazily: resolve what loading uses, so "build" is not an import.
    _ = (transformers.BertModel, transformers.BertConfig, transformers.BertTokenizerFast)
    quiet_progress_bars()
    laps.lap("import")
    # What infer_local does (load_model(cache=True) = cached_artefact + model_fn), split in two.
    folder_of = model_folder if way == "baseline" else cached_artefact
    with folder_of(model) as folder:
        laps.lap("artefact")
        loaded_model = model_fn(folder)
        laps.lap("build")
    summary = predict_file(model, papers, out, model=loaded_model)
    laps.lap("predict")
    return {
        "way": way,
        **laps.times,
        "load_s": laps.times["artefact_s"] + laps.times["build_s"],
        "papers": summary.labelled,
        "precision": summary.precision,
        "load_average": os.getloadavg()[0],
    }


def run_child(way: str, model: Path, papers: Path, work: Path, cache: Path) -> dict:
    out = work / f"out-{way}.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.artefact_cache", "--child", way,
         "--model", str(model), "--papers-file", str(papers), "--out", str(out),
         "--cache", str(cache)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["output"] = out.read_text()
    return row


def measure(model: Path, papers: Path, repeats: int, work: Path) -> list[dict]:
    rows = []
    for repeat in range(repeats):
        cache = work / f"cache-{repeat}"
        # cold must come before warm; the baseline moves around them.
        order = [["baseline", "cold", "warm"], ["cold", "warm", "baseline"]][repeat % 2]
        for way in order:
            row = run_child(way, model, papers, work, cache)
            row["repeat"] = repeat
            rows.append(row)
            shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}
            print(json.dumps({k: v for k, v in shown.items() if k != "output"}), flush=True)
    outputs = {row["output"] for row in rows}
    if len(outputs) != 1:
        raise SystemExit("the ways labelled the papers differently: the benchmark is invalid")
    for row in rows:
        del row["output"]
    return rows


def summarise(rows: list[dict]) -> dict:
    table = {}
    for way in WAYS:
        mine = [row for row in rows if row["way"] == way]
        keys = [k for k in mine[0] if k.endswith("_s") and k != "load_average"]
        medians = {key: statistics.median(row[key] for row in mine) for key in keys}
        infer = medians["load_s"] + medians["predict_s"]
        table[way] = {**medians, "infer_s": infer, "load_share": medians["load_s"] / infer}
    return table


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model.tar.gz (default: train a tiny one)")
    parser.add_argument("--papers", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--papers-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.model, args.papers_file, args.out, args.cache)))
        return None

    from benchmarks._corpus import write_papers
    from benchmarks.backlog import tiny_model

    work = Path(tempfile.mkdtemp(prefix="petal-bench-cache-"))
    model = args.model or tiny_model(work / "model")
    papers = write_papers(work / "papers.jsonl", args.papers)
    rows = measure(model, papers, args.repeats, work)
    table = summarise(rows)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "model": str(args.model) if args.model else "tiny (max_length 48, trained here)",
        "model_mb": round(model.stat().st_size / 2**20, 1),
        "papers": args.papers,
        "rows": rows,
        "medians": table,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{args.papers} papers, {report['model_mb']} MB artefact; medians of {args.repeats}:")
    print("wall seconds (CPU seconds)")
    columns = ("import", "artefact", "build", "predict")
    print(f"{'':10}" + "".join(f"{c:>16}" for c in columns) + f"{'load share':>12}")
    for way, m in table.items():
        cells = "".join(f"{m[c + '_s']:8.2f} ({m[c + '_cpu_s']:5.2f})" for c in columns)
        print(f"{way:10}{cells}{m['load_share']:12.0%}")
    base, warm = table["baseline"], table["warm"]
    print(f"warm vs baseline: load {base['load_s'] / warm['load_s']:.1f}x faster, "
          f"infer {base['infer_s'] / warm['infer_s']:.2f}x")  # fmt: skip
    return report


if __name__ == "__main__":
    main()
