"""Fixtures for store tests: a small label tree, stored, and a JSONL writer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from petal_labeller.store.taxonomy import load_taxonomy
from petal_labeller.taxonomy import Label, Taxonomy


@pytest.fixture
def tree() -> Taxonomy:
    return Taxonomy(
        [
            Label("protect", "Protect from harm", 1, None),
            Label("non_living", "Protect from non-living threats", 2, "protect"),
            Label("temperature", "Protect from temperature", 3, "non_living"),
            Label("move", "Move", 1, None),
            Label("active", "Active movement", 2, "move"),
        ]
    )


@pytest.fixture
def stored_tree(db_conn, tree: Taxonomy) -> Taxonomy:
    load_taxonomy(db_conn, tree)
    return tree


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """Write records (dicts as JSON, bytes/str verbatim) one a line."""

    def write(records: list, name: str = "papers.jsonl") -> Path:
        path = tmp_path / name
        with open(path, "wb") as handle:
            for record in records:
                if isinstance(record, bytes):
                    handle.write(record + b"\n")
                elif isinstance(record, str):
                    handle.write(record.encode("utf-8") + b"\n")
                else:
                    handle.write(json.dumps(record).encode("utf-8") + b"\n")
        return path

    return write


def paper(n: int, **fields) -> dict:
    record = {
        "doi": f"10.1234/paper.{n}",
        "title": f"Paper {n}",
        "abstract": f"Abstract {n}",
        "venue": ["Journal"],
        "url": f"https://example.org/{n}",
    }
    record.update(fields)
    return record
