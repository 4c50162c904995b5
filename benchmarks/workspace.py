"""A daily run with the run's files in S3 (moto) against the local workspace, same run.

    python -m benchmarks.workspace [--papers 1000] [--repeats 2] [--model model.tar.gz]

The steps each labelling task runs (`stage_run` -> `infer_run` -> `finish_run`, as the
`stage`, `infer_local` and `write_labels` tasks call them) over the same papers, in
turns: once with the local workspace (PETAL_HOME only) and once with
`PETAL_WORKSPACE_URL=s3://.../` on a moto server on this machine, where every step
publishes what it wrote and fetches what it reads. A turn labels a fresh copy of the
same database, so both label the same papers with the same model. Reported per step:
seconds and papers/s (best of the turns), and, measured apart, the seconds the S3
turn spent in the workspace's publish/fetch calls (the transfers): inference time
varies far more than that on a busy machine, so the two totals' difference would
be noise. moto on loopback has no network latency: the transfer time here is the
client's work and a lower bound for real S3 (tens of ms per request more).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._corpus import write_papers
from benchmarks.backlog import DAY, SINCE, UNTIL, VERSION, seeded_database, tiny_model
from petal_labeller.store.databases import drop_database

RESULTS = Path(__file__).resolve().parent / "results" / "workspace.json"
BUCKET = "petal-bench"


def _moto() -> tuple[object, str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    import boto3

    boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
    return server, url


#: Seconds and calls spent in the workspace's publish/fetch (the transfers), this process.
TRANSFERS = {"s": 0.0, "calls": 0}


def _time_transfers() -> None:
    """Wrap Workspace.publish/fetch to add up their time: the S3 turn's extra cost,
    measured apart from inference, whose time varies far more on a busy machine."""
    from petal_labeller.pipeline import workspace

    for name in ("publish", "fetch"):
        original = getattr(workspace.Workspace, name)

        def timed(self, path, _original=original):
            start = time.perf_counter()
            try:
                return _original(self, path)
            finally:
                if self.remote:
                    TRANSFERS["s"] += time.perf_counter() - start
                    TRANSFERS["calls"] += 1

        setattr(workspace.Workspace, name, timed)


def one_run(url: str, model, workspace_url: str | None, turn: int) -> dict:
    """The three steps, timed; the workspace removed after."""
    from petal_labeller.pipeline.run import finish_run, infer_run, stage_run

    if workspace_url:
        os.environ["PETAL_WORKSPACE_URL"] = workspace_url
    else:
        os.environ.pop("PETAL_WORKSPACE_URL", None)
    run_id = f"bench/workspace-{turn}-{'s3' if workspace_url else 'local'}"
    TRANSFERS.update(s=0.0, calls=0)
    times = {}
    start = time.perf_counter()
    staged = stage_run(
        run_id, run_id.replace("/", "-"), model_version=VERSION, since=SINCE, until=UNTIL,
        database_url=url,
    )  # fmt: skip
    times["stage_s"] = time.perf_counter() - start
    try:
        start = time.perf_counter()
        infer_run(staged, model=model)
        times["infer_s"] = time.perf_counter() - start
        start = time.perf_counter()
        summary = finish_run(staged, database_url=url)
        times["write_s"] = time.perf_counter() - start
    finally:
        staged.workspace.remove()
    transfers = {"transfer_s": TRANSFERS["s"], "transfers": TRANSFERS["calls"]}
    return {"papers": summary.papers_labelled, **times, **transfers}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", type=Path, help="model.tar.gz (default: train a tiny one)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from petal_labeller.runtime.load import load_model
    from petal_labeller.store.connection import resolve_url

    work = Path(tempfile.mkdtemp(prefix="petal-bench-workspace-"))
    os.environ["PETAL_HOME"] = str(work / "petal-home")
    server_url = resolve_url()
    model_path = args.model or tiny_model(work / "model")
    model = load_model(model_path)
    papers = write_papers(work / "papers.jsonl", args.papers)
    moto, _ = _moto()
    _time_transfers()
    rows = []
    try:
        for turn in range(args.repeats):
            for name, workspace in (("local", None), ("s3", f"s3://{BUCKET}/workspace/")):
                url = seeded_database(server_url, papers, model_path)
                try:
                    row = {"workspace": name, "turn": turn, **one_run(url, model, workspace, turn)}
                finally:
                    drop_database(server_url, url)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        moto.stop()
    summary = {}
    for name in ("local", "s3"):
        mine = [r for r in rows if r["workspace"] == name]
        summary[name] = {
            step: round(min(r[step] for r in mine), 3) for step in ("stage_s", "infer_s", "write_s")
        }
        summary[name]["infer_papers_per_s"] = round(args.papers / summary[name]["infer_s"], 1)
    s3_rows = [r for r in rows if r["workspace"] == "s3"]
    summary["s3_transfers"] = {
        "calls_per_run": s3_rows[0]["transfers"],
        "seconds_per_run_best": round(min(r["transfer_s"] for r in s3_rows), 3),
        "seconds_per_run_worst": round(max(r["transfer_s"] for r in s3_rows), 3),
    }
    report = {
        "benchmark": "workspace",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "papers": args.papers,
        "day": DAY.date().isoformat(),
        "rows": rows,
        "best_of_turns": summary,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return report


if __name__ == "__main__":
    main()
