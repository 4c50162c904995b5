"""Bulk model-label upsert: `upsert_model_labels` (COPY + one merge) versus a row-by-row loop.

`python -m benchmarks.upsert [--papers 20000] [--labels 5]` writes papers x labels
rows into a throwaway database on the configured server (PETAL_DATABASE_URL,
else the embedded one), both ways, in the same run:
- insert: an empty label table receives every row;
- update: a newer run rewrites every row with new scores.
The baseline is the obvious hand-written code: one `cursor.execute` of an
INSERT ... ON CONFLICT DO UPDATE per row written (each paper's labelled-by
mark, then each of its labels), committed once at the end. Both ways
must leave identical rows, which is checked before any number is printed.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.store.connection import redact, resolve_url
from petal_labeller.store.databases import create_database, drop_database
from petal_labeller.store.labels import upsert_model_labels
from petal_labeller.store.migrations import upgrade
from petal_labeller.store.models import register_model_version
from petal_labeller.store.runs import start_run
from petal_labeller.store.taxonomy import load_taxonomy
from petal_labeller.taxonomy import Taxonomy

VERSION = "bench-v1"
MARK_PAPER = """
    INSERT INTO paper_labelling (paper_id, model_version, run_id, label_count)
    VALUES (%s, %s, %s, %s)
    ON CONFLICT (paper_id, model_version)
    DO UPDATE SET run_id = EXCLUDED.run_id, label_count = EXCLUDED.label_count,
                  labelled_at = EXCLUDED.labelled_at
"""
ROW_BY_ROW = """
    INSERT INTO paper_labels (paper_id, label_id, origin, score, model_version, run_id)
    VALUES (%s, %s, 'model', %s, %s, %s)
    ON CONFLICT (paper_id, label_id, model_version) WHERE origin = 'model'
    DO UPDATE SET score = EXCLUDED.score, run_id = EXCLUDED.run_id,
                  labelled_at = EXCLUDED.labelled_at
"""


def make_rows(paper_ids: list[int], label_ids: list[str], per_paper: int, seed: int):
    rng = random.Random(seed)
    return [
        (paper_id, label_id, round(rng.random(), 4))
        for paper_id in paper_ids
        for label_id in rng.sample(label_ids, per_paper)
    ]


def row_by_row(conn, rows, run_id: str) -> None:
    """One execute per row written: the paper's labelled-by mark, then each of its labels."""
    by_paper: dict[int, list[tuple[str, float]]] = {}
    for paper_id, label_id, score in rows:
        by_paper.setdefault(paper_id, []).append((label_id, score))
    with conn.cursor() as cur:
        for paper_id, labels in by_paper.items():
            cur.execute(MARK_PAPER, (paper_id, VERSION, run_id, len(labels)))
            for label_id, score in labels:
                cur.execute(ROW_BY_ROW, (paper_id, label_id, score, VERSION, run_id))
    conn.commit()


def label_rows(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT paper_id, label_id, score, run_id FROM paper_labels "
            "WHERE origin = 'model' ORDER BY paper_id, label_id"
        )
        labels = cur.fetchall()
        cur.execute("SELECT paper_id, run_id, label_count FROM paper_labelling ORDER BY paper_id")
        return labels + cur.fetchall()


def clear_labels(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("TRUNCATE paper_labels, paper_labelling")
    conn.commit()


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def prepare(conn, papers: int) -> tuple[list[int], list[str]]:
    upgrade(conn)
    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    load_taxonomy(conn, taxonomy)
    register_model_version(conn, VERSION, base_model="none", artefact_uri="file:///dev/null")
    for run_id in ("run-1", "run-2"):
        start_run(conn, run_id, VERSION)
    lines = io.StringIO("".join(f"Benchmark paper {n}\tbenchmark\n" for n in range(papers)))
    with conn.cursor() as cur:
        cur.copy_expert("COPY papers (title, source) FROM STDIN", lines)
        cur.execute("SELECT id FROM papers ORDER BY id")
        paper_ids = [row[0] for row in cur.fetchall()]
    conn.commit()
    return paper_ids, taxonomy.ids


def run(url: str, papers: int, per_paper: int) -> dict:
    conn = psycopg2.connect(url)
    paper_ids, label_ids = prepare(conn, papers)
    first_rows = make_rows(paper_ids, label_ids, per_paper, seed=1)
    # Same (paper, label) pairs as the first run, new scores: the update path.
    rng = random.Random(2)
    second_rows = [(p, label, round(rng.random(), 4)) for p, label, _ in first_rows]

    results: dict[str, dict[str, float]] = {}
    outcomes = {}
    for method in ("upsert_model_labels", "row_by_row"):
        clear_labels(conn)
        if method == "upsert_model_labels":
            insert = timed(lambda: upsert_model_labels(conn, first_rows, VERSION, "run-1"))
            update = timed(lambda: upsert_model_labels(conn, second_rows, VERSION, "run-2"))
        else:
            insert = timed(lambda: row_by_row(conn, first_rows, "run-1"))
            update = timed(lambda: row_by_row(conn, second_rows, "run-2"))
        results[method] = {"insert_s": insert, "update_s": update}
        outcomes[method] = label_rows(conn)
    conn.close()
    if outcomes["upsert_model_labels"] != outcomes["row_by_row"]:
        raise SystemExit("the two methods left different rows: the benchmark is invalid")
    return {
        "rows": len(first_rows),
        "papers": papers,
        "labels_per_paper": per_paper,
        "results": results,
        "speedup_insert": results["row_by_row"]["insert_s"]
        / results["upsert_model_labels"]["insert_s"],
        "speedup_update": results["row_by_row"]["update_s"]
        / results["upsert_model_labels"]["update_s"],
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=20_000)
    parser.add_argument("--labels", type=int, default=5, help="labels per paper")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    server = resolve_url(args.database_url)
    url = create_database(server, prefix="petal_bench")
    try:
        report = run(url, args.papers, args.labels)
    finally:
        drop_database(server, url)
    with psycopg2.connect(server) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version")
        server_version = cur.fetchone()[0]
    conn.close()
    report |= {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "server": f"PostgreSQL {server_version} at {redact(server)}",
    }
    ours, base = report["results"]["upsert_model_labels"], report["results"]["row_by_row"]
    shape = f"{report['papers']:,} papers x {report['labels_per_paper']}"
    print(f"{report['rows']:,} label rows ({shape})")
    print(f"{'':24}{'insert (s)':>12}{'update (s)':>12}")
    print(f"{'upsert_model_labels':24}{ours['insert_s']:12.2f}{ours['update_s']:12.2f}")
    print(f"{'row-by-row execute':24}{base['insert_s']:12.2f}{base['update_s']:12.2f}")
    print(f"{'speed-up':24}{report['speedup_insert']:11.1f}x{report['speedup_update']:11.1f}x")
    print(f"{report['server']}; {report['cpu']}; {report['date']}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "upsert.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
