"""Issue 24 item 7: rejections stream to the rejects file; memory holds a count and a few.

The memory bound itself is measured by `python -m benchmarks rejects` (peak RSS of the
real commands over 1,000 and 200,000 bad lines), not by a timed unit test.
"""

from __future__ import annotations

import json

import pytest

from petal_labeller.papers import Rejection
from petal_labeller.rejects import RejectSink


def _rejection(line: int, reason: str = "bad") -> Rejection:
    return Rejection(line, "title", reason, f"record {line}\t\ud800")


def test_passes_are_merged_by_line_and_only_a_few_are_kept(tmp_path):
    path = tmp_path / "rejects.jsonl"
    with RejectSink(path, passes=3, keep=4) as sink:
        for line in range(1, 2001, 2):
            sink.add(_rejection(line), 0)
        for line in range(2, 2001, 10):
            sink.add(_rejection(line, "duplicate"), 1)
        sink.add(_rejection(3, "refused"), 2)
    rows = [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]
    assert sink.count == len(rows) == 1000 + 200 + 1
    assert [r["line"] for r in rows] == sorted(r["line"] for r in rows)
    assert [(r.line, r.reason) for r in sink.first] == [
        (1, "bad"), (2, "duplicate"), (3, "bad"), (3, "refused")
    ]  # fmt: skip
    assert rows[0]["record"] == "record 1\t\ud800"  # a lone surrogate never fails the write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rejects.jsonl"]  # no spool left


def test_a_failed_command_leaves_the_old_rejects_file_and_no_spool(tmp_path):
    path = tmp_path / "rejects.jsonl"
    path.write_text("earlier\n", encoding="utf-8")
    with pytest.raises(RuntimeError), RejectSink(path, passes=2) as sink:
        sink.add(_rejection(1), 0)
        raise RuntimeError("the transaction failed")
    assert path.read_text(encoding="utf-8") == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rejects.jsonl"]


def test_without_a_path_it_only_counts(tmp_path):
    with RejectSink(None, keep=2) as sink:
        for line in (5, 1, 9, 2):
            sink.add(_rejection(line))
    assert sink.count == 4 and [r.line for r in sink.first] == [1, 2]


def test_an_import_keeps_a_bounded_summary_but_writes_every_rejection(db_conn, tmp_path):
    from petal_labeller.store.papers import import_papers
    from petal_labeller.taxonomy import Taxonomy

    source, rejects = tmp_path / "papers.jsonl", tmp_path / "rejects.jsonl"
    lines = ["{broken"] * 300 + ['{"title": "Gecko feet"}', '{"title": "gecko feet"}']
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_papers(db_conn, source, Taxonomy([]), rejects)
    assert report.rejected == 301 and report.inserted == 1
    assert len(report.rejections) == 100 and report.rejections[0].line == 1
    written = [json.loads(text) for text in rejects.read_text().splitlines()]
    assert [r["line"] for r in written] == [*range(1, 301), 302]


def test_an_unwritable_rejects_folder_fails_first_naming_the_rejects_file(tmp_path):
    path = tmp_path / "missing" / "rejects.jsonl"
    with pytest.raises(OSError) as caught:
        RejectSink(path, passes=2)
    assert caught.value.filename == str(path)
