"""A large backlog labelled in one run on the local backend: time and peak memory.

    python -m benchmarks.backlog [--dag-sizes 10000,100000] [--sizes 5000,20000,100000]
                                 [--single-sizes 5000,20000] [--chunk 2000]
                                 [--model model.tar.gz] [--no-probe]

For each backlog size a throwaway PeTaL database gets that many new papers
(the 630 shared PeTaL papers, then retitled copies), and a fresh process labels
all of them, so its peak RSS is its own. Three ways:

- `dag`: the product itself: one `petal_label_papers` run over the day the
  papers were ingested, through Airflow's `dag.test()` (local backend, tasks
  in this process: stage -> infer_local -> write_labels -> cleanup), one
  transaction for the whole backlog;
- `single`: the steps of `petal_labeller.pipeline.run.label_window` (the run
  those tasks and `petal label` make), `stage_run` -> `infer_run` ->
  `finish_run` (check + one-transaction write), as one batch, with the time of
  each step and, with --heap, the traced Python heap of checking + writing;
- `chunked`: the same steps over chunks of `--chunk` papers (each chunk one
  transaction; `pending_papers` skips what earlier chunks labelled). The model
  is loaded once;
- `batch` (`--batch-sizes`): the batch path alone, no database and no Airflow:
  the model loaded once (timed apart), then `predict_file` (the SageMaker
  handlers over 256-line chunks) over the same papers: what `dag` is compared with.

In `dag` mode a thread samples the process's RSS every 0.2 s, and each task's
window (from Airflow's task instances) gets its peak RSS and, for
`infer_local`, papers/s.

Peak RSS (`ru_maxrss`) flat across sizes = memory bounded, not growing with the
backlog. Without --model a tiny model (max length 48) is trained in seconds: it
measures the pipeline's throughput; a production model's inference is slower
per paper (see the pipeline section of docs/benchmarks.md) and adds nothing
that grows with the backlog.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._corpus import write_papers
from petal_labeller.store.databases import create_database, drop_database

DAY = datetime(2026, 11, 2, tzinfo=UTC)
SINCE, UNTIL = DAY, datetime(2026, 11, 3, tzinfo=UTC)
VERSION = "backlog"
RESULTS = Path(__file__).resolve().parent / "results" / "backlog.json"
MODES = ["batch", "dag", "single", "chunked"]


# The labelling itself (runs in the child process) ---------------------------------------
def _label_batch(conn_url: str, model, work: Path, run_id: str, limit: int | None) -> dict:
    """One batch through the steps `label_window` runs (stage -> infer -> check + write),
    timed one by one; the model is loaded once by the caller."""
    from petal_labeller.pipeline.run import finish_run, infer_run, stage_run

    os.environ.setdefault("PETAL_HOME", str(work / "petal-home"))
    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return clock[-1] - clock[-2]

    staged = stage_run(
        run_id, run_id, model_version=VERSION, since=SINCE, until=UNTIL, max_papers=limit,
        database_url=conn_url,
    )  # fmt: skip
    stage_s = lap()
    try:
        if not staged.count:
            return {"papers": 0, "labels": 0, "rejected": 0}
        infer_run(staged, model=model)
        infer_s = lap()
        with _phase_heap() as heap:
            summary = finish_run(staged, database_url=conn_url)
            check_write_s = lap()
    finally:
        staged.workspace.remove()
    return {
        "papers": summary.papers_labelled,
        "labels": summary.labels_written,
        "rejected": summary.papers_rejected,
        "stage_s": stage_s,
        "infer_s": infer_s,
        "check_write_s": check_write_s,
        **heap,
    }


@contextmanager
def _phase_heap() -> Iterator[dict]:
    """While tracing: how far the traced heap rose above where it stood when the phase began.

    The run's overall peak is kept in `_HEAP_PEAK` before the phase resets it.
    """
    found: dict = {}
    if not tracemalloc.is_tracing():
        yield found
        return
    current, peak = tracemalloc.get_traced_memory()
    _HEAP_PEAK[0] = max(_HEAP_PEAK[0], peak)
    tracemalloc.reset_peak()
    yield found
    _, phase_peak = tracemalloc.get_traced_memory()
    _HEAP_PEAK[0] = max(_HEAP_PEAK[0], phase_peak)
    found["write_heap_mb"] = (phase_peak - current) / 2**20


_HEAP_PEAK = [0]


def label_backlog(
    url: str, model_path: Path, mode: str, chunk: int, work: Path, heap: bool = False
) -> dict:
    """Label every pending paper; returns counts, seconds and this process's peak RSS.

    With `heap`, tracemalloc also reports the peak of Python allocations after the
    model is loaded: the lists and dicts that would grow with the backlog (slower).
    """
    from petal_labeller.runtime.load import load_model

    started = time.perf_counter()
    model = load_model(model_path)
    loaded = time.perf_counter()
    if heap:
        tracemalloc.start()
    totals = {"papers": 0, "labels": 0, "rejected": 0, "batches": 0}
    write_heap = 0.0
    while True:
        limit = chunk if mode == "chunked" else None
        done = _label_batch(url, model, work, f"backlog/{mode}-{totals['batches']}", limit)
        if not done["papers"] and not done["rejected"]:
            break
        totals["batches"] += 1
        write_heap = max(write_heap, done.pop("write_heap_mb", 0.0))
        for key, value in done.items():
            totals[key] = totals.get(key, 0) + value
        if mode == "single":
            break
    finished = time.perf_counter()
    for step in ("stage_s", "infer_s", "check_write_s"):
        totals[step] = round(totals.get(step, 0.0), 2)
    if heap:
        peak = max(_HEAP_PEAK[0], tracemalloc.get_traced_memory()[1])
        totals["python_heap_peak_mb"] = round(peak / 2**20, 2)
        totals["write_heap_peak_mb"] = round(write_heap, 3)
        tracemalloc.stop()
    return {
        **totals,
        "seconds": round(finished - started, 2),
        "model_load_seconds": round(loaded - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


@contextmanager
def rss_samples(every: float = 0.2) -> Iterator[list[tuple[float, float]]]:
    """(unix time, RSS MB) of this process every `every` seconds while the block runs."""
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    samples.append((time.time(), int(line.split()[1]) / 1024))
            done.wait(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


def task_phases(run_id: str, samples: list[tuple[float, float]], papers: int) -> dict:
    """Each task of the run: seconds, peak RSS inside its window, papers/s for inference."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    phases = {}
    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == run_id).all()
        windows = [(ti.task_id, ti.start_date, ti.end_date) for ti in tis if ti.start_date]
    for task, start, end in sorted(windows, key=lambda w: w[1]):
        begin, finish = start.timestamp(), (end or start).timestamp()
        inside = [mb for t, mb in samples if begin <= t <= finish]
        row = {"seconds": round(finish - begin, 2)}
        row["peak_rss_mb"] = round(max(inside), 1) if inside else None
        if task.endswith("infer_local") and finish > begin:
            row["papers_per_s"] = round(papers / (finish - begin), 1)
        phases[task] = row
    return phases


def label_batch_only(model_path: Path, work: Path, size: int) -> dict:
    """The batch path alone over `size` benchmark papers: load once, then `predict_file`."""
    from petal_labeller.model.predict import predict_file
    from petal_labeller.runtime.load import load_model

    papers = write_papers(work / f"batch-{size}.jsonl", size)
    started = time.perf_counter()
    model = load_model(model_path)
    loaded = time.perf_counter()
    summary = predict_file(model_path, papers, work / f"batch-{size}.out.jsonl", model=model)
    finished = time.perf_counter()
    papers.unlink()
    (work / f"batch-{size}.out.jsonl").unlink()
    return {
        "papers": summary.labelled,
        "rejected": summary.failed,
        "precision": summary.precision,
        "model_load_seconds": round(loaded - started, 2),
        "infer_seconds": round(finished - loaded, 2),
        "infer_papers_per_s": round(summary.labelled / (finished - loaded), 1),
        "seconds": round(finished - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def label_backlog_dag(url: str, work: Path) -> dict:
    """Label every pending paper with one `petal_label_papers` run (dag.test(), local backend)."""
    os.environ["PETAL_HOME"] = str(work / f"petal-home-{uuid.uuid4().hex[:8]}")
    os.environ["PETAL_DATABASE_URL"] = url
    from petal_labeller.airflow.laptop import local_run

    local_run.configure(work / "airflow")  # before anything imports airflow
    local_run._migrate(Path(os.environ["AIRFLOW_HOME"]))  # not timed: once per Airflow home
    with rss_samples() as samples:
        started = time.perf_counter()
        result = local_run.run_dag("petal_label_papers", UNTIL, {"backend": "local"})
        finished = time.perf_counter()
    if result.state != "success":
        raise RuntimeError(f"labelling run failed: {result.task_states}")
    from petal_labeller.store.connection import connect

    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, papers_selected, papers_labelled, papers_rejected, labels_written "
            "FROM labelling_runs"
        )
        runs = cur.fetchall()
    if len(runs) != 1 or runs[0][0] != "success":
        raise RuntimeError(f"expected one successful labelling run, found {runs}")
    _, selected, labelled, rejected, written = runs[0]
    return {
        "papers": labelled,
        "labels": written,
        "rejected": rejected,
        "papers_selected": selected,
        "batches": 1,
        "seconds": round(finished - started, 2),
        "task_seconds": {task: round(s, 2) for task, s in result.task_seconds.items()},
        "tasks": task_phases(result.run_id, samples, labelled),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


# Setting up (parent process) ------------------------------------------------------------
def tiny_model(folder: Path) -> Path:
    """A real trained artefact with a short max length: seconds to train, fast to run."""
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.model.config import preset
    from petal_labeller.model.train import train_artefact

    lines = (SHARED_DATA_DIR / "labelled_papers.jsonl").read_text().splitlines()[:24]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "papers.jsonl").write_text("\n".join(lines) + "\n")
    config = preset("default", max_length=48, knn_k=3)
    return train_artefact(
        folder / "papers.jsonl", SHARED_DATA_DIR / "taxonomy.json", folder, config,
        progress=False, version=VERSION,
    )  # fmt: skip


def seeded_database(server: str, papers: Path, model: Path) -> str:
    """A throwaway migrated database holding the papers and the model as production."""
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.store.connection import connect
    from petal_labeller.store.migrations import upgrade
    from petal_labeller.store.models import register_model_version
    from petal_labeller.store.papers import import_papers
    from petal_labeller.store.taxonomy import load_taxonomy
    from petal_labeller.taxonomy import Taxonomy

    url = create_database(server, prefix="petal_backlog")
    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    with closing(connect(url)) as conn:
        upgrade(conn)
        load_taxonomy(conn, taxonomy)
        report = import_papers(conn, papers, taxonomy)
        if report.rejected:
            raise RuntimeError(f"benchmark papers rejected: {report.rejections[:3]}")
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE papers SET ingested_at = %s", (DAY.replace(hour=12),))
            cur.execute("ANALYZE papers")
        register_model_version(
            conn, VERSION, base_model="bench", artefact_uri=str(model), promote=True
        )
    return url


def check_complete(url: str, papers: int) -> dict:
    """Every paper labelled exactly once by the model version, no duplicate label rows."""
    from petal_labeller.store.connection import connect

    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT paper_id) FROM paper_labelling")
        marks, distinct = cur.fetchone()
        cur.execute(
            "SELECT count(*) FROM (SELECT 1 FROM paper_labels GROUP BY paper_id, label_id, "
            "model_version HAVING count(*) > 1) d"
        )
        duplicates = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM paper_labels WHERE origin = 'model'")
        labels = cur.fetchone()[0]
    if not (marks == distinct == papers and duplicates == 0):
        raise RuntimeError(f"incomplete: {marks} marks, {distinct} papers, {duplicates} dupes")
    return {"papers_marked": marks, "label_rows": labels}


def measure(
    server: str, size: int, mode: str, chunk: int, model: Path, work: Path, heap: bool = False
) -> dict:
    """Seed a database with `size` papers, label them in a fresh process, check, drop."""
    if mode == "batch":
        return measure_batch(size, model, work)
    papers = write_papers(work / f"papers-{size}.jsonl", size)
    seeded = time.perf_counter()
    url = seeded_database(server, papers, model)
    seed_seconds = time.perf_counter() - seeded
    papers.unlink()
    try:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.backlog", "--child", mode, "--url", url,
             "--model", str(model), "--chunk", str(chunk), "--work", str(work)]
            + (["--heap"] if heap else []),
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result.update(check_complete(url, size))
    finally:
        drop_database(server, url)
    return {
        "mode": mode, "backlog": size, "chunk": chunk if mode == "chunked" else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "seed_seconds": round(seed_seconds, 1), **result,
        "papers_per_s": round(size / result["seconds"], 1),
    }  # fmt: skip


def measure_batch(size: int, model: Path, work: Path) -> dict:
    """The batch path alone over `size` papers, in a fresh process."""
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.backlog", "--child", "batch", "--url", "-",
         "--model", str(model), "--work", str(work), "--chunk", str(size)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    result = json.loads(child.stdout.strip().splitlines()[-1])
    return {
        "mode": "batch", "backlog": size, "chunk": None,
        "load_average": [round(x, 2) for x in os.getloadavg()], **result,
        "papers_per_s": round(size / result["seconds"], 1), "label_rows": 0,
    }  # fmt: skip


def stage_probe(server: str, size: int, chunk: int, work: Path, model: Path) -> dict:
    """Selecting from a `size` backlog without inference: one chunk vs everything at once.

    Inference dominates a full run, so this measures the part that scales with the
    backlog on its own, at full size: time and Python heap peak of `stage_pending`.
    """
    from petal_labeller.pipeline.stage import stage_pending
    from petal_labeller.store.connection import connect

    papers = write_papers(work / f"papers-{size}.jsonl", size)
    seeded = time.perf_counter()
    url = seeded_database(server, papers, model)
    result = {"backlog": size, "seed_seconds": round(time.perf_counter() - seeded, 1)}
    papers.unlink()
    try:
        for name, limit in (("chunk", chunk), ("all", None)):
            with closing(connect(url)) as conn:
                tracemalloc.start()
                started = time.perf_counter()
                batch = stage_pending(conn, work / f"probe-{name}.jsonl", VERSION, SINCE, UNTIL,
                                      limit=limit)  # fmt: skip
                result[f"stage_{name}_seconds"] = round(time.perf_counter() - started, 2)
                result[f"stage_{name}_heap_mb"] = round(
                    tracemalloc.get_traced_memory()[1] / 2**20, 1
                )
                tracemalloc.stop()
                result[f"stage_{name}_papers"] = batch.count
                batch.path.unlink()
    finally:
        drop_database(server, url)
    return result


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dag-sizes", default="10000,100000", help="backlogs, one DAG run")
    parser.add_argument("--sizes", default="", help="backlogs, chunked")
    parser.add_argument("--single-sizes", default="", help="backlogs, one batch, no Airflow")
    parser.add_argument("--batch-sizes", default="", help="papers, the batch path alone")
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--model", type=Path, help="model.tar.gz (default: train a tiny one)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--heap", action="store_true", help="also trace Python heap (slower)")
    parser.add_argument(
        "--stage-probe", type=int, default=0, help="backlog for the selection-only probe (0: none)"
    )
    args = parser.parse_args(argv)

    if args.child == "batch":
        print(json.dumps(label_batch_only(args.model, args.work, args.chunk)))
        return []
    if args.child == "dag":
        print(json.dumps(label_backlog_dag(args.url, args.work)))
        return []
    if args.child:
        result = label_backlog(
            args.url, args.model, args.child, args.chunk, args.work, heap=args.heap
        )
        print(json.dumps(result))
        return []

    from petal_labeller.store.connection import resolve_url

    work = Path(tempfile.mkdtemp(prefix="petal-bench-backlog-"))
    server = resolve_url()
    model = args.model or tiny_model(work / "model")
    plan = [(size, "batch") for size in _sizes(args.batch_sizes)]
    plan += [(size, "single") for size in _sizes(args.single_sizes)]
    plan += [(size, "chunked") for size in _sizes(args.sizes)]
    plan += [(size, "dag") for size in _sizes(args.dag_sizes)]
    rows = []
    for size, mode in sorted(plan, key=lambda item: (MODES.index(item[1]), item[0])):
        row = measure(server, size, mode, args.chunk, model, work, heap=args.heap)
        rows.append(row)
        print(json.dumps(row), flush=True)
    probe = None
    if args.stage_probe:
        probe = stage_probe(server, args.stage_probe, args.chunk, work, model)
        print(json.dumps(probe), flush=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average": os.getloadavg(),
        "model": str(args.model) if args.model else "tiny (max_length 48, trained here)",
        "runs": rows,
        "stage_probe": probe,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2))
    print("\n| mode | backlog | chunk | seconds | papers/s | peak RSS | labels |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['backlog']:,} | {r['chunk'] or '-'} | {r['seconds']} | "
              f"{r['papers_per_s']} | {r['peak_rss_mb']} MB | {r['label_rows']:,} |")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
