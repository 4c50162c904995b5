"""The PeTaL page at 100,000 model-labelled papers: the page as it was against the page now.

    python -m benchmarks.petal_page [--papers 100000] [--views 5]

A throwaway database on the configured server (PETAL_DATABASE_URL, else the
embedded one) gets the shared taxonomy and `--papers` synthetic papers loaded
with psycopg2 COPY: 90% labelled by the production model (a best path of three
labels down the tree, 1-3 labels each, seeded scores) and waiting for review,
5% curator-labelled, 5% not labelled yet. Both ways read the same database in
the same run, `--views` times each (the first view is reported apart: cold caches):

- `before`: the page's data as it was gathered before issue 24 item 10: the
  pending papers walked row by row to count them (`pending_papers`), and the
  "Needs review" head ranked by streaming every paper waiting for review into
  Python (`review.needs_review`, which `petal review queue` still uses);
- `after`: `petal_labeller.airflow.ui.data.dashboard` as it is now (counts in SQL,
  the head read from the stored uncertainty through its index), plus the HTML.

Both must show the same counts and the same ten papers (checked before any
number is printed); results go to benchmarks/results/petal_page.json with the
machine and the date.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.store.connection import redact, resolve_url
from petal_labeller.store.databases import create_database, drop_database
from petal_labeller.store.migrations import upgrade
from petal_labeller.store.models import register_model_version
from petal_labeller.store.runs import start_run
from petal_labeller.store.taxonomy import load_taxonomy
from petal_labeller.taxonomy import Taxonomy

VERSION, RUN = "bench-v1", "bench-run"
RESULTS = Path(__file__).resolve().parent / "results" / "petal_page.json"


def _copy(cur, table: str, columns: str, lines: list[str]) -> None:
    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.StringIO("".join(lines)))


def load(url: str, papers: int, seed: int = 7) -> dict[str, int]:
    """Fill the database (see the module doc); the counts it loaded."""
    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    children: dict[str | None, list[str]] = {}
    for label_id in taxonomy.ids:
        children.setdefault(taxonomy.parent(label_id), []).append(label_id)
    rng = random.Random(seed)
    counts = {"papers": papers, "model": 0, "curated": 0, "pending": 0}
    with closing(psycopg2.connect(url)) as conn:
        upgrade(conn)
        load_taxonomy(conn, taxonomy)
        register_model_version(
            conn, VERSION, base_model="bench", artefact_uri="file:///bench.tar.gz", promote=True
        )
        start_run(conn, RUN, VERSION)
        with conn, conn.cursor() as cur:
            _copy(
                cur, "papers", "doi, title, abstract, source, ingested_at",
                [f"10.5555/bench.{i}\tPaper {i}\tAbstract {i}\tbench\t2026-11-02 00:00:00+00\n"
                 for i in range(papers)],
            )  # fmt: skip
            cur.execute("SELECT id FROM papers ORDER BY id")
            ids = [row[0] for row in cur.fetchall()]
            marks, labels, curated = [], [], []
            for paper_id in ids:
                kind = rng.random()
                if kind < 0.05:
                    counts["pending"] += 1
                    continue
                path, parent, score = [], None, 1.0
                for _ in range(rng.randint(1, 3)):
                    parent = rng.choice(children.get(parent) or [None])
                    if parent is None:
                        break
                    score = round(score * rng.uniform(0.3, 1.0), 4)
                    path.append((parent, score))
                if kind < 0.10:
                    counts["curated"] += 1
                    curated += [f"{paper_id}\t{label}\tcurator\n" for label, _ in path]
                    continue
                counts["model"] += 1
                marks.append(f"{paper_id}\t{VERSION}\t{RUN}\t{len(path)}\n")
                labels += [
                    f"{paper_id}\t{label}\tmodel\t{s}\t{VERSION}\t{RUN}\n" for label, s in path
                ]
            _copy(cur, "paper_labelling", "paper_id, model_version, run_id, label_count", marks)
            _copy(cur, "paper_labels", "paper_id, label_id, origin", curated)
            _copy(
                cur, "paper_labels", "paper_id, label_id, origin, score, model_version, run_id",
                labels,
            )  # fmt: skip
        backfill_uncertainty(conn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
    return counts


def backfill_uncertainty(conn) -> None:
    """COPY bypasses the upsert that stores each paper's uncertainty: score every mark
    (the same statement as the upsert's)."""
    from petal_labeller.store.labels import refresh_uncertainty

    refresh_uncertainty(conn)


def before(conn) -> dict[str, Any]:
    """The page's data gathered as before issue 24 item 10 (see the module doc)."""
    from petal_labeller.pipeline.stage import EARLIEST, LATEST
    from petal_labeller.review import needs_review
    from petal_labeller.store.models import production_model
    from petal_labeller.store.papers import pending_papers
    from petal_labeller.store.stats import collect_stats
    from petal_labeller.store.taxonomy import read_taxonomy

    stats = collect_stats(conn)
    version = production_model(conn).version
    waiting = sum(1 for _ in pending_papers(conn, EARLIEST, LATEST, version))
    head = needs_review(conn, read_taxonomy(conn), version, 10)
    return {"papers": stats.papers, "waiting": waiting, "needs_review": head}


def after(conn) -> dict[str, Any]:
    from petal_labeller.airflow.ui.app import TEMPLATES, chart_rows
    from petal_labeller.airflow.ui.data import dashboard

    data = dashboard(conn)
    html = TEMPLATES.get_template("petal.html").render(data=data, chart=chart_rows(data["labels"]))
    assert "Needs review" in html
    return data


def _same_page(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert (old["papers"], old["waiting"]) == (new["papers"], new["waiting"]), "counts differ"
    a, b = old["needs_review"], new["needs_review"]
    assert (a["waiting"], a["reviewed"]) == (b["waiting"], b["reviewed"]), "review counts differ"
    ids = [[p["paper_id"] for p in head["papers"]] for head in (a, b)]
    scores = [[p["uncertainty"] for p in head["papers"]] for head in (a, b)]
    # The same papers; only a tie at the 4th decimal (Python's float rounding against
    # PostgreSQL's numeric) may order two of them apart.
    assert ids[0] == ids[1] or all(abs(x - y) <= 1e-4 for x, y in zip(*scores, strict=True)), (
        f"different papers to review first: {ids}"
    )


def _views(fn, url: str, views: int) -> tuple[float, list[float], Any]:
    """Seconds of the first view (cold) and of each later one, each on a fresh connection
    as the page opens one per request."""
    times, result = [], None
    for _ in range(views + 1):
        with closing(psycopg2.connect(url)) as conn:
            start = time.perf_counter()
            result = fn(conn)
            times.append(time.perf_counter() - start)
    return times[0], times[1:], result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--views", type=int, default=5)
    args = parser.parse_args(argv)
    # Imported before any view is timed: the first view measures the database's cold
    # caches, not the import of FastAPI and Airflow.
    import petal_labeller.airflow.ui.app
    import petal_labeller.review  # noqa: F401

    server = resolve_url()
    url = create_database(server, prefix="petal_bench_page")
    try:
        start = time.perf_counter()
        counts = load(url, args.papers)
        loaded = time.perf_counter() - start
        print(f"loaded {counts} in {loaded:.1f} s", flush=True)
        result: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            "python": platform.python_version(),
            "server": redact(server),
            "loaded": counts,
            "load_s": round(loaded, 1),
        }
        pages = {}
        for name, fn in (("before", before), ("after", after)):
            cold, warm, pages[name] = _views(fn, url, args.views)
            result[name] = {
                "first_view_s": round(cold, 3),
                "median_view_s": round(statistics.median(warm), 3),
                "max_view_s": round(max(warm), 3),
            }
            print(f"{name}: {result[name]}", flush=True)
        _same_page(pages["before"], pages["after"])
        result["speed_up"] = round(
            result["before"]["median_view_s"] / result["after"]["median_view_s"], 1
        )
        print(json.dumps(result, indent=2))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    finally:
        drop_database(server, url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
