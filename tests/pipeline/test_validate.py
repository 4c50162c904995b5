"""Checking inference output before anything is written."""

from __future__ import annotations

import json

import pytest

from petal_labeller.pipeline.validate import OutputError, check_output, write_quarantine

LABELS = ["move", "move.fly", "protect"]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _result(paper_id, labels=("move",), **scores):
    values = {"move": 0.9, "move.fly": 0.2, "protect": 0.1, **scores}
    return {"paper_id": paper_id, "scores": values, "labels": list(labels)}


@pytest.fixture
def staged(tmp_path):
    return _write(
        tmp_path / "in.jsonl",
        [{"paper_id": 1, "title": "Wings"}, {"paper_id": 2, "title": " "}, {"paper_id": 3}],
    )


def test_rows_for_chosen_labels_and_error_lines_set_aside(tmp_path, staged):
    out = _write(
        tmp_path / "out.jsonl",
        [
            _result(1, ["move", "move.fly"]),
            {"line": 2, "paper_id": 2, "error": "fields 'title' and 'abstract' are both empty"},
            _result(3, []),
        ],
    )
    checked = check_output(staged, out, LABELS)
    assert (len(checked.rows), len(checked.labelled), len(checked.rejected)) == (2, 2, 1)
    assert list(checked.rows) == [(1, "move", 0.9), (1, "move.fly", 0.2)]
    assert list(checked.labelled) == [1, 3]
    assert list(checked.rejected) == [
        {
            "paper_id": 2,
            "doi": None,
            "title": " ",
            "error": "fields 'title' and 'abstract' are both empty",
        }
    ]
    report = write_quarantine(checked.rejected, tmp_path / "q" / "run.jsonl")
    assert json.loads(report.read_text())["paper_id"] == 2
    assert write_quarantine([], tmp_path / "none.jsonl") is None


def test_checked_rows_are_spooled_to_the_workspace_not_kept_in_memory(tmp_path, staged):
    out = _write(tmp_path / "out.jsonl", [_result(1), _result(2, ["protect"]), _result(3)])
    checked = check_output(staged, out, LABELS)

    spooled = sorted(path.name for path in tmp_path.glob("out.*.jsonl"))
    assert spooled == ["out.labelled.jsonl", "out.rejected.jsonl", "out.rows.jsonl"]
    rows_file = (tmp_path / "out.rows.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in rows_file] == [
        [1, "move", 0.9],
        [2, "protect", 0.1],
        [3, "move", 0.9],
    ]
    # Re-iterable, like the lists it replaces.
    assert list(checked.rows) == list(checked.rows)
    assert (2, "protect", 0.1) in checked.rows
    checked.remove()
    assert not list(tmp_path.glob("out.*.jsonl"))


def test_refused_output_leaves_no_spool_behind(tmp_path, staged):
    out = _write(tmp_path / "out.jsonl", [_result(1), _result(2, move=1.5), _result(3)])
    with pytest.raises(OutputError):
        check_output(staged, out, LABELS)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([_result(1), _result(2)], "2 lines for 3 staged papers"),
        ([_result(1), _result(2), _result(3), _result(4)], "4 lines for 3 staged papers"),
        ([_result(1), _result(3), _result(2)], "line 2: field 'paper_id' is 3"),
        ([_result(1), _result(2, move=1.5), _result(3)], "'move' = 1.5 is not in [0, 1]"),
        ([_result(1), _result(2, grow=0.5), _result(3)], "labels not in the taxonomy: ['grow']"),
        ([_result(1), {"paper_id": 2, "scores": {"move": 0.1}, "labels": ["protect"]}, _result(3)],
         "labels without a score: ['protect']"),
        ([_result(1), {"paper_id": 2, "labels": []}, _result(3)], "field 'scores'"),
    ],
)  # fmt: skip
def test_broken_output_is_refused_naming_the_line_and_field(tmp_path, staged, results, message):
    out = _write(tmp_path / "out.jsonl", results)
    with pytest.raises(OutputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_output(staged, out, LABELS)


def test_missing_output_is_an_error(tmp_path, staged):
    with pytest.raises(OutputError, match="wrote nothing"):
        check_output(staged, tmp_path / "absent.jsonl", LABELS)


def test_invalid_json_names_the_line(tmp_path, staged):
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps(_result(1)) + "\n{not json\n" + json.dumps(_result(3)) + "\n")
    with pytest.raises(OutputError, match="line 2: not valid JSON"):
        check_output(staged, out, LABELS)


@pytest.mark.parametrize(
    "line",
    [b'{"paper_id": 1, "scores": {"move": 0.9}, "pad": "' + b"x" * 70_000 + b'"}\n',
     b"x" * 200_000, b'{"paper_id": 1, "scores": {"move": 0.9}, "t": "\xff\xfe"}\n',
     b"[" * 30_000 + b"]" * 30_000 + b"\n", b'{"paper_id": 1, "paper_id": 2, "scores": {}}\n'],
    ids=["long-object", "long-no-newline", "not-utf8", "nested-too-deeply", "a-key-twice"],
)  # fmt: skip
def test_an_overlong_or_undecodable_output_line_is_refused_naming_it(tmp_path, staged, line):
    """A result line is a few KiB; a longer one is read no further than the bound. Nesting
    that exhausts the decoder is the line's error, not a crash of the task."""
    out = tmp_path / "out.jsonl"
    out.write_bytes(line)
    pattern = r"inference output out\.jsonl line 1: (longer|not valid UTF|not usable JSON)"
    with pytest.raises(OutputError, match=pattern):
        check_output(staged, out, LABELS)
