"""The paper record and its validation, without a database."""

from __future__ import annotations

import pytest

from petal_labeller.papers import (
    Paper,
    PaperError,
    Rejection,
    normalise_doi,
    parse_paper,
    read_papers,
)
from petal_labeller.taxonomy import Label, Taxonomy

TREE = Taxonomy([Label("move", "Move", 1, None), Label("active", "Active movement", 2, "move")])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.1098/RSBL.2009.0934", "10.1098/rsbl.2009.0934"),
        ("https://doi.org/10.1073/pnas.0912477107", "10.1073/pnas.0912477107"),
        ("http://dx.doi.org/10.1000/ABC", "10.1000/abc"),
        ("doi:10.1000/xyz(1)", "10.1000/xyz(1)"),
        ("  DOI: 10.12345/a/b.c  ", "10.12345/a/b.c"),
    ],
)
def test_doi_is_normalised(raw, expected):
    assert normalise_doi(raw) == expected


@pytest.mark.parametrize(
    "raw", ["10.1000", "11.1000/x", "10.12/too-short-registrant", "10.1000/has space", "x"]
)
def test_invalid_doi_is_refused(raw):
    with pytest.raises(PaperError, match="'doi'"):
        normalise_doi(raw)


def test_full_record_parses():
    paper = parse_paper(
        {
            "doi": "DOI:10.1000/X",
            "title": "  A title ",
            "abstract": "",
            "venue": ["A", "B", "A", " "],
            "url": None,
            "labels": ["active", "move", "active"],
            "paper_id": 7,
        },
        TREE,
    )
    assert paper == Paper(
        title="A title",
        doi="10.1000/x",
        abstract=None,
        venue=("A", "B"),
        url=None,
        labels=("active", "move"),
    )
    assert paper.key == "doi:10.1000/x"
    assert paper.to_record()["labels"] == ["active", "move"]


def test_labels_absent_is_not_the_same_as_empty():
    assert parse_paper({"title": "t"}).labels is None
    assert parse_paper({"title": "t", "labels": []}).labels == ()
    assert "labels" not in parse_paper({"title": "t"}).to_record()


def test_paper_without_doi_is_keyed_by_title():
    assert parse_paper({"title": "Same Title"}).key == parse_paper({"title": "same title"}).key


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({}, "title"),
        ({"title": 3}, "title"),
        ({"title": "t", "venue": {"a": 1}}, "venue"),
        ({"title": "t", "labels": ["nope"]}, "labels"),
        ({"title": "t", "labels": [1]}, "labels"),
        ({"title": "t", "url": 5}, "url"),
        ({"title": "t\x00"}, "title"),
        ("just a string", "record"),
    ],
)
def test_each_bad_field_is_named(record, field):
    with pytest.raises(PaperError) as caught:
        parse_paper(record, TREE)
    assert caught.value.field == field


def test_read_papers_survives_bad_bytes_and_reports_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b'{"title": "one", "doi": "10.1000/1"}\n'
        b"\n"
        b'{"title": "caf\xe9"}\n'
        b'{"title": "two", "doi": "https://doi.org/10.1000/1"}\n'
        b'{"title": "three"}\r\n'
    )
    items = list(read_papers(path, TREE))
    assert [(n, type(item).__name__) for n, item in items] == [
        (1, "Paper"),
        (3, "Rejection"),
        (4, "Rejection"),
        (5, "Paper"),
    ]
    bad_bytes, duplicate = items[1][1], items[2][1]
    assert isinstance(bad_bytes, Rejection) and "not valid UTF-8" in bad_bytes.reason
    assert bad_bytes.raw == '{"title": "caf\\xe9"}'
    assert duplicate.reason == "duplicate of the paper on line 1" and duplicate.field == "doi"
