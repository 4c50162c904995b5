"""Scoring a model's held-out output (`score_predictions`): the numbers the quality gate
compares, from a SageMaker transform's output or the worker's own run alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from petal_labeller.model.scoring import score_results
from petal_labeller.pipeline.training import (
    MAX_RESULT_LINE_BYTES,
    EvaluationError,
    score_predictions,
)
from petal_labeller.taxonomy import Label, Taxonomy

TREE = Taxonomy(
    [
        Label("protect", "Protect from harm", 1, None),
        Label("heat", "Protect from temperature", 2, "protect"),
        Label("move", "Move", 1, None),
    ]
)
PAPERS = [
    {"doi": "10.1/a", "title": "Desert beetles", "labels": ["heat"]},
    {"doi": None, "title": "Gecko\u2028feet", "labels": ["move"]},
    {"doi": "10.1/c", "title": "Lotus", "labels": ["protect"]},
]


def _result(paper: dict, scores: dict, labels: list) -> dict:
    return {"doi": paper["doi"], "title": paper["title"], "scores": scores, "labels": labels}


GOOD = [
    _result(PAPERS[0], {"protect": 0.9, "heat": 0.8, "move": 0.1}, ["protect", "heat"]),
    _result(PAPERS[1], {"protect": 0.6, "heat": 0.1, "move": 0.4}, ["protect"]),
    {"line": 3, "error": "field 'abstract': not a string"},  # unreadable: no labels
]


def _jsonl(path: Path, records: list) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


@pytest.fixture
def heldout(tmp_path: Path) -> Path:
    return _jsonl(tmp_path / "heldout.jsonl", PAPERS)


def test_the_output_is_scored_by_the_shared_scoring_with_closed_gold_labels(heldout, tmp_path):
    metrics = score_predictions(_jsonl(tmp_path / "out.jsonl", GOOD), heldout, TREE)

    expected = score_results(GOOD, [p["labels"] for p in PAPERS], TREE)
    assert metrics == {name: round(float(value), 4) for name, value in expected.items()}
    # 2 of 4 closed gold labels chosen (heat+protect), one false positive (protect on paper 2).
    assert metrics["micro_F1"] == pytest.approx(round(2 * 2 / (2 * 2 + 1 + 2), 4))
    assert metrics["papers"] == 3


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (GOOD[:2], "2 lines for 3 held-out papers"),
        ([*GOOD, GOOD[0]], "more lines than the 3 held-out papers"),
        ([GOOD[1], GOOD[0], GOOD[2]], "output line 1: field 'doi' is None, but the held-out"),
        ([{**GOOD[0], "scores": {"protect": 1.5}}, *GOOD[1:]], "'protect' = 1.5 is not in [0, 1]"),
        ([{**GOOD[0], "scores": {"protect": True}}, *GOOD[1:]], "'protect' = True is not in"),
        ([{**GOOD[0], "labels": ["fly"]}, *GOOD[1:]], "labels not in the taxonomy: ['fly']"),
        ([GOOD[0], {**GOOD[1], "scores": None}, GOOD[2]], "output line 2: fields 'scores'"),
        ([GOOD[0], [1, 2], GOOD[2]], "line 2: expected a JSON object"),
    ],
    ids=["short", "long", "reordered", "score", "bool", "label", "no-scores", "array"],
)
def test_an_output_that_breaks_the_contract_is_refused_naming_line_and_field(
    heldout, tmp_path, broken, message
):
    with pytest.raises(EvaluationError) as raised:
        score_predictions(_jsonl(tmp_path / "out.jsonl", broken), heldout, TREE)
    assert message in str(raised.value)


def test_unparsable_deep_and_oversized_lines_are_refused(heldout, tmp_path):
    output = tmp_path / "out.jsonl"
    for line, message in [
        (b"{not json", "line 1: not valid JSON"),
        (b"[" * 10_000 + b"]" * 10_000, "line 1: not usable JSON: nested too deeply"),
        (
            b'{"pad": "' + b"x" * MAX_RESULT_LINE_BYTES + b'"}',
            f"longer than {MAX_RESULT_LINE_BYTES}",
        ),
    ]:
        output.write_bytes(line + b"\n")
        with pytest.raises(EvaluationError, match=message):
            score_predictions(output, heldout, TREE)
