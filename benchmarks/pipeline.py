"""End-to-end daily labelling run vs pure inference of the same papers (local backend).

    python -m benchmarks.pipeline [--papers 1000] [--model model.tar.gz]

Builds a throwaway PeTaL database with N new papers ingested on one day, runs
`petal_label_papers` for that day through Airflow (`dag.test()`: every task,
XCom, staging, validation, the one-transaction upsert and cleanup), and times
`predict_file` (model load + inference, the local backend's core) on the very
same staged papers before and after. Overhead = pipeline wall time / best
inference time - 1. Without --model, a model with the default architecture
and max length is trained for a few steps (inference cost does not depend on
how well it was trained).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._corpus import write_papers
from petal_labeller.store.databases import create_database, drop_database

DAY = datetime(2026, 11, 2, tzinfo=UTC)
RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"


def _quick_model(folder: Path) -> Path:
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.model.config import preset
    from petal_labeller.model.train import train_artefact

    return train_artefact(
        SHARED_DATA_DIR / "labelled_papers.jsonl",
        SHARED_DATA_DIR / "taxonomy.json",
        folder,
        preset("default"),
        progress=False,
        version="bench",
        report=False,
    )


def _prepare(url: str, papers: Path, model: Path) -> None:
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.store.connection import connect
    from petal_labeller.store.migrations import upgrade
    from petal_labeller.store.models import register_model_version
    from petal_labeller.store.papers import import_papers
    from petal_labeller.store.taxonomy import load_taxonomy
    from petal_labeller.taxonomy import Taxonomy

    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    with closing(connect(url)) as conn:
        upgrade(conn)
        load_taxonomy(conn, taxonomy)
        report = import_papers(conn, papers, taxonomy)
        if report.rejected:
            raise RuntimeError(f"benchmark papers rejected: {report.rejections[:3]}")
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE papers SET ingested_at = %s", (DAY.replace(hour=12),))
        register_model_version(
            conn, "bench", base_model="bench", artefact_uri=str(model), promote=True
        )


def _inference_seconds(model: Path, url: str, folder: Path) -> tuple[float, float]:
    """(model load + inference, inference only) for the papers the DAG will stage."""
    from petal_labeller.model.predict import predict_file
    from petal_labeller.pipeline.stage import stage_pending
    from petal_labeller.store.connection import connect

    staged = folder / "staged.jsonl"
    with closing(connect(url)) as conn:
        stage_pending(conn, staged, "bench", DAY, DAY.replace(day=DAY.day + 1))
    started = time.perf_counter()
    summary = predict_file(model, staged, folder / "predicted.jsonl")
    return time.perf_counter() - started, summary.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument(
        "--model", type=Path, help="model.tar.gz to use (default: train a quick one)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="petal-bench-pipeline-"))
    os.environ["PETAL_HOME"] = str(work / "petal-home")
    from petal_labeller.airflow.laptop import local_run

    local_run.configure(work / "airflow")  # before anything imports airflow
    from petal_labeller.store.connection import resolve_url

    server = resolve_url()
    url = create_database(server, prefix="petal_bench")
    os.environ["PETAL_DATABASE_URL"] = url
    try:
        model = args.model or _quick_model(work / "model")
        _prepare(url, write_papers(work / "papers.jsonl", args.papers), model)

        before, infer_before = _inference_seconds(model, url, work)
        started = time.perf_counter()
        result = local_run.run_dag(
            "petal_label_papers", DAY.replace(day=DAY.day + 1), {"backend": "local"}
        )
        pipeline = time.perf_counter() - started
        after, infer_after = _inference_seconds(model, url, work)

        if result.state != "success":
            raise RuntimeError(f"pipeline run failed: {result.task_states}")
        from petal_labeller.store.connection import connect

        with closing(connect(url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT papers_labelled, labels_written FROM labelling_runs")
            labelled, labels = cur.fetchone()
        baseline = min(before, after)
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            "papers": args.papers,
            "papers_labelled": labelled,
            "labels_written": labels,
            "pipeline_seconds": round(pipeline, 2),
            "pipeline_papers_per_s": round(args.papers / pipeline, 1),
            "inference_seconds": [round(before, 2), round(after, 2)],
            "inference_only_seconds": [round(infer_before, 2), round(infer_after, 2)],
            "inference_papers_per_s": round(args.papers / baseline, 1),
            "overhead": round(pipeline / baseline - 1, 3),
            "task_seconds": {k: round(v, 2) for k, v in result.task_seconds.items()},
        }
    finally:
        drop_database(server, url)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(
        f"\n| papers | pipeline | papers/s | inference (load+run) | papers/s | overhead |\n"
        f"|---|---|---|---|---|---|\n"
        f"| {args.papers} | {pipeline:.1f} s | {report['pipeline_papers_per_s']} | "
        f"{baseline:.1f} s | {report['inference_papers_per_s']} | "
        f"{100 * report['overhead']:+.1f}% (target < 30%) |"
    )


if __name__ == "__main__":
    main()
