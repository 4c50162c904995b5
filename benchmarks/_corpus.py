"""Benchmark corpora: any number of real PeTaL papers, shared by the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path


def write_papers(path: Path, count: int) -> Path:
    """`count` real papers, cycling through the shared set; copies get their own title."""
    from petal_labeller.config import SHARED_DATA_DIR

    with (SHARED_DATA_DIR / "labelled_papers.jsonl").open(encoding="utf-8") as lines:
        source = [json.loads(line) for line in lines if line.strip()]
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            record = dict(source[index % len(source)])
            record.pop("labels", None)
            if index >= len(source):
                record["doi"] = None
                record["title"] = f"{record['title']} [copy {index // len(source)}]"
            out.write(json.dumps(record) + "\n")
    return path
