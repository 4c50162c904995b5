"""A labelling run under 0001's statement triggers vs native foreign keys (issue 13 item 5).

    python -m benchmarks.foreign_keys [--papers 2000] [--repeats 3] [--write-repeats 7]
                                      [--model model.tar.gz]

Two throwaway databases on the configured server, each holding the same
`--papers` new papers and the same model: one migrated up to 0004 (references
of paper_labels enforced by 0001's statement-level triggers), one migrated to
the end (0005: PostgreSQL foreign keys). In one process, with the model loaded
once, the benchmark alternates between them (A B, then B A, ...):

- **run**: the steps `petal label` / `label_window` runs, `stage_run` ->
  `infer_run` -> `finish_run` (check + the one-transaction write), from an
  empty label table, `--repeats` times each;
- **write**: `finish_run` alone over one staged input and model output per
  database, `--write-repeats` times each: the step the keys are in, without
  inference's noise.

Between repetitions the label tables are truncated. Medians are reported with
every sample. Inference is the same work under both schemas but its time swings
by 2x from run to run on a shared machine, so the verdict compares the steps
that touch the database (stage + check/write, median per schema): their
difference as a share of the triggers' median run, against 5%. Without
`--model` a tiny real model (max length 48) is trained in seconds, so inference
is much faster than production's and the write's share of the run is
overstated: the run's verdict is conservative.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._corpus import write_papers
from benchmarks.backlog import DAY, SINCE, UNTIL, VERSION, tiny_model
from petal_labeller.store.databases import create_database, drop_database

RESULTS = Path(__file__).resolve().parent / "results" / "foreign_keys.json"
#: Migration that ends each schema: 0004 = 0001's triggers, None = every file (native keys).
SCHEMAS = {"triggers": "0004", "foreign_keys": None}


def seeded(server: str, papers: Path, model: Path, until: str | None) -> str:
    """A throwaway database migrated up to `until`, holding the papers and the model."""
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.store.connection import connect
    from petal_labeller.store.migrations import upgrade
    from petal_labeller.store.models import register_model_version
    from petal_labeller.store.papers import import_papers
    from petal_labeller.store.taxonomy import load_taxonomy
    from petal_labeller.taxonomy import Taxonomy

    url = create_database(server, prefix="petal_bench_fk")
    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    with closing(connect(url)) as conn:
        upgrade(conn, until=until)
        load_taxonomy(conn, taxonomy)
        import_papers(conn, papers, taxonomy)
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE papers SET ingested_at = %s", (DAY.replace(hour=12),))
        register_model_version(
            conn, VERSION, base_model="bench", artefact_uri=str(model), promote=True
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
    return url


def reset(url: str) -> None:
    """No labels, no marks, no runs: every repetition writes into the same empty tables."""
    from petal_labeller.store.connection import connect

    with closing(connect(url)) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("TRUNCATE paper_labels, paper_labelling, labelling_runs")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE paper_labels, paper_labelling, labelling_runs")


def label_run(url: str, model, run_id: str) -> dict:
    """stage -> infer -> check + write, each step timed; the workspace is removed after."""
    from petal_labeller.pipeline.run import finish_run, infer_run, stage_run

    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return clock[-1] - clock[-2]

    staged = stage_run(
        run_id, run_id, model_version=VERSION, since=SINCE, until=UNTIL, database_url=url
    )
    stage_s = lap()
    try:
        infer_run(staged, model=model)
        infer_s = lap()
        summary = finish_run(staged, database_url=url)
        write_s = lap()
    finally:
        staged.workspace.remove()
    return {
        "stage_s": stage_s,
        "infer_s": infer_s,
        "check_write_s": write_s,
        "run_s": stage_s + infer_s + write_s,
        "labels": summary.labels_written,
        "papers": summary.papers_labelled,
    }


def _order(repeat: int) -> list[str]:
    names = list(SCHEMAS)
    return names if repeat % 2 == 0 else names[::-1]


def measure(urls: dict[str, str], model, repeats: int, write_repeats: int) -> dict:
    """Interleaved repetitions of the run, then of the write alone; every sample kept."""
    from petal_labeller.pipeline.run import finish_run, infer_run, stage_run

    samples: dict[str, dict[str, list]] = {name: {"run": [], "write": []} for name in SCHEMAS}
    for repeat in range(repeats):
        for name in _order(repeat):
            reset(urls[name])
            result = label_run(urls[name], model, f"fk-bench/{name}-run-{repeat}")
            result["load_average"] = os.getloadavg()[0]
            samples[name]["run"].append(result)
            print(name, "run", json.dumps(result), flush=True)
    staged = {}
    for name in SCHEMAS:
        reset(urls[name])
        staged[name] = stage_run(
            f"fk-bench/{name}-write",
            f"fk-bench/{name}-write",
            model_version=VERSION,
            since=SINCE,
            until=UNTIL,
            database_url=urls[name],
        )
        infer_run(staged[name], model=model)
    try:
        for repeat in range(write_repeats):
            for name in _order(repeat):
                reset(urls[name])
                started = time.perf_counter()
                summary = finish_run(staged[name], database_url=urls[name])
                seconds = time.perf_counter() - started
                samples[name]["write"].append(
                    {"check_write_s": seconds, "labels": summary.labels_written}
                )
                print(name, "write", round(seconds, 3), summary.labels_written, flush=True)
    finally:
        for run in staged.values():
            run.workspace.remove()
    return samples


def summarise(samples: dict) -> dict:
    medians = {
        name: {
            "run_s": statistics.median(r["run_s"] for r in found["run"]),
            "run_db_s": statistics.median(r["stage_s"] + r["check_write_s"] for r in found["run"]),
            "run_check_write_s": statistics.median(r["check_write_s"] for r in found["run"]),
            "write_s": statistics.median(r["check_write_s"] for r in found["write"]),
        }
        for name, found in samples.items()
    }
    old, new = medians["triggers"], medians["foreign_keys"]
    return {
        "medians": medians,
        "run_change": new["run_s"] / old["run_s"] - 1,
        "run_change_from_db": (new["run_db_s"] - old["run_db_s"]) / old["run_s"],
        "write_change": new["write_s"] / old["write_s"] - 1,
        "write_delta_s": new["write_s"] - old["write_s"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="whole runs per schema")
    parser.add_argument("--write-repeats", type=int, default=7, help="writes alone per schema")
    parser.add_argument("--model", type=Path, help="model.tar.gz (default: train a tiny one)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from petal_labeller.runtime.load import load_model
    from petal_labeller.store.connection import resolve_url

    work = Path(tempfile.mkdtemp(prefix="petal-bench-fk-"))
    os.environ.setdefault("PETAL_HOME", str(work / "petal-home"))
    server = resolve_url()
    model_path = args.model or tiny_model(work / "model")
    papers = write_papers(work / "papers.jsonl", args.papers)
    urls = {name: seeded(server, papers, model_path, until) for name, until in SCHEMAS.items()}
    try:
        model = load_model(model_path)
        samples = measure(urls, model, args.repeats, args.write_repeats)
    finally:
        for url in urls.values():
            drop_database(server, url)
    summary = summarise(samples)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "papers": args.papers,
        "model": str(args.model) if args.model else "tiny (max_length 48, trained here)",
        "samples": samples,
        **summary,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    labels = samples["foreign_keys"]["write"][-1]["labels"] if args.write_repeats else "?"
    print(f"\n{args.papers:,} papers, {labels} label rows; medians:")
    print(f"{'':14}{'run (s)':>9}{'stage+write (s)':>17}{'write in run':>14}{'write alone':>13}")
    for name, m in summary["medians"].items():
        print(
            f"{name:14}{m['run_s']:9.2f}{m['run_db_s']:17.2f}"
            f"{m['run_check_write_s']:14.2f}{m['write_s']:13.3f}"
        )
    change = summary["run_change_from_db"]
    verdict = "keep foreign keys" if change <= 0.05 else "foreign keys cost over 5%"
    print(
        f"database steps change the run by {change:+.1%} (whole-run medians "
        f"{summary['run_change']:+.1%}, inference noise included); write alone "
        f"{summary['write_change']:+.1%} ({summary['write_delta_s']:+.3f} s): {verdict}"
    )
    return report


if __name__ == "__main__":
    main()
