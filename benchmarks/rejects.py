"""Memory of `petal papers import` and `petal review apply` against bad lines (issue 24 item 7).

    python -m benchmarks.rejects [--bad 200000] [--few 1000] [--limit-mb 32]

Both commands run as the CLI runs them, each in a fresh process of its own on a
throwaway database of the configured server, over a file of `--few` bad lines and
one of `--bad` bad lines (several kinds: broken JSON, wrong types, bad DOIs,
unknown label ids, ids in other digits; each line a rejection with its reason)
with `--rejects`. Peak RSS (`ru_maxrss`) of each process is compared: the large
file may cost at most `--limit-mb` (16) more than the small one, whatever its number
of bad lines, else the benchmark exits 1. The rejects file must hold every bad line.
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
import time
from datetime import UTC, datetime
from pathlib import Path

#: Each bad line carries this much text, as a queue line's title and abstract would.
PAD = "Hostile input for the rejects benchmark. " * 10
RESULTS = Path(__file__).resolve().parent / "results" / "rejects.json"
TREE = [
    {"id": "move", "name": "Move", "level": 1, "parent": None},
    {"id": "swim", "name": "Swim", "level": 2, "parent": "move"},
]


def bad_import_line(n: int) -> str:
    kinds = [
        '{"title": "Gecko feet %d", "doi": "not a doi %d", "abstract": "PAD"}',
        '{"title": %d, "abstract": "number %d as a title PAD"}',
        '{"title": "Owl wings %d", "labels": ["nope%d"], "abstract": "PAD"}',
        '{"title": "Lotus leaves %d" "abstract": "a comma missing %d PAD"}',
    ]
    return (kinds[n % len(kinds)] % (n, n)).replace("PAD", PAD)


def bad_decision_line(n: int) -> str:
    kinds = [
        '{"paper_id": "x%d", "accept": true, "title": "PAD"}',
        '{"paper_id": %d, "doi": "10.5555/p", "add": ["nope%d"], "title": "PAD"}',
        '{"paper_id": "\\u0661%d", "accept": true, "title": "PAD"}',
        '{"paper_id": %d, "accept": "maybe %d", "title": "PAD"}',
    ]
    line = kinds[n % len(kinds)]
    return (line % ((n,) if line.count("%d") == 1 else (n + 1, n))).replace("PAD", PAD)


def write_file(path: Path, lines: int, make) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for n in range(lines):
            handle.write(make(n) + "\n")
    return path


def child(argv: list[str]) -> None:
    """Run one CLI command in this process; print its exit code and this process's peak RSS."""
    from petal_labeller.cli import main

    started = time.perf_counter()
    try:
        code = main(argv, standalone_mode=False) or 0
    except SystemExit as exc:
        code = exc.code or 0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = round(time.perf_counter() - started, 2)
    print(json.dumps({"exit": code, "peak_rss_mb": round(peak_kb / 1024, 1), "s": seconds}))


def measure(url: str, command: list[str], path: Path, rejects: Path) -> dict:
    argv = ["--database-url", url, *command[:2], str(path), *command[2:], "--rejects", str(rejects)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.rejects", "--child", json.dumps(argv)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if not done.stdout.strip():
        raise RuntimeError(f"{command}: no result; stderr: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    with open(rejects, encoding="utf-8") as handle:
        result["rejects_written"] = sum(1 for _ in handle)
    return result


def seeded(server: str) -> str:
    from petal_labeller.store.connection import connect
    from petal_labeller.store.databases import create_database
    from petal_labeller.store.migrations import upgrade
    from petal_labeller.store.taxonomy import load_taxonomy
    from petal_labeller.taxonomy import Taxonomy

    url = create_database(server, prefix="petal_bench_rejects")
    conn = connect(url)
    try:
        upgrade(conn)
        load_taxonomy(conn, Taxonomy.from_records(TREE))
    finally:
        conn.close()
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bad", type=int, default=200_000)
    parser.add_argument("--few", type=int, default=1_000)
    parser.add_argument("--limit-mb", type=float, default=16.0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0

    from petal_labeller.store.connection import resolve_url
    from petal_labeller.store.databases import drop_database

    work = Path(tempfile.mkdtemp(prefix="petal-bench-rejects-"))
    server = resolve_url()
    url = seeded(server)
    commands = {
        "papers import": (["papers", "import"], bad_import_line),
        "review apply": (["review", "apply", "--reviewer", "bench"], bad_decision_line),
    }
    runs: dict = {}
    try:
        for name, (command, make) in commands.items():
            for lines in (args.few, args.bad):
                path = write_file(work / f"{command[1]}-{lines}.jsonl", lines, make)
                result = measure(url, command, path, work / f"{command[1]}-{lines}.rejects")
                result["bad_lines"] = lines
                runs.setdefault(name, []).append(result)
                print(f"{name:14} {lines:>8,} bad lines: {result}", flush=True)
    finally:
        drop_database(server, url)
    failures = []
    for name, (few, many) in runs.items():
        growth = round(many["peak_rss_mb"] - few["peak_rss_mb"], 1)
        few["growth_mb"] = many["growth_mb"] = growth
        for run in (few, many):
            if run["rejects_written"] != run["bad_lines"] or run["exit"] != 1:
                failures.append(f"{name}: {run['bad_lines']} bad lines: {run}")
        if growth > args.limit_mb:
            failures.append(f"{name}: peak RSS grew {growth} MB (limit {args.limit_mb})")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "limit_mb": args.limit_mb,
        "runs": runs,
        "failures": failures,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    for name, (few, many) in runs.items():
        print(
            f"{name}: {few['bad_lines']:,} bad lines {few['peak_rss_mb']} MB, "
            f"{many['bad_lines']:,} bad lines {many['peak_rss_mb']} MB: +{many['growth_mb']} MB"
        )
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
