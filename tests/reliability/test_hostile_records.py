"""Hostile records and requests (issue 12, items 6-9): deep nesting, lone surrogates,
NaN ids, an output path that is the input, a taxonomy that would empty the store.

The handler tests use a stand-in model (labels every paper `move`): what is
tested is the decoding, validation and strict output around the model.
"""

from __future__ import annotations

import json
import math
import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petal_labeller.cli import main
from petal_labeller.outputs import OutputPathError
from petal_labeller.papers import LineError, decode_line
from petal_labeller.runtime.handlers import input_fn, output_fn, predict_fn
from petal_labeller.store.papers import import_papers
from petal_labeller.store.taxonomy import load_taxonomy
from petal_labeller.taxonomy import Taxonomy, TaxonomyError
from tests.reliability.conftest import taxonomy

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class LabelsEverything:
    def predict(self, records: list[dict]) -> list[dict]:
        return [
            {
                "doi": r.get("doi"),
                "title": r.get("title"),
                "paper_id": r.get("paper_id"),
                "labels": ["move"],
            }
            for r in records
        ]


def nested(depth: int) -> bytes:
    return b'{"title": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"


GOOD = st.integers(0, 10**6).map(
    lambda n: json.dumps({"title": f"Paper {n}", "paper_id": n}).encode()
)
#: (line, field the error must name, or None for the line as a whole)
HOSTILE = st.one_of(
    st.integers(2_000, 200_000).map(nested),
    st.integers(2_000, 50_000).map(lambda d: b"[" * d),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]).map(
        lambda c: b'{"title": "nan id", "paper_id": ' + c + b"}"
    ),
    st.sampled_from(["title", "abstract", "doi", "venue", "paper_id", "url"]).map(
        lambda f: ('{"title": "t", "' + f + '": "lone \\ud800 surrogate"}').encode()
    ),
    st.just(b'{"title": "big", "paper_id": ' + b"9" * 5000 + b"}"),
    st.just(b'{"title": "id object", "paper_id": {"a": [1, 2]}}'),
)


def strict(line: str) -> dict:
    """Parse as a strict parser would: no NaN/Infinity, no lone surrogates."""
    line.encode("utf-8")
    return json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


@FAST
@given(lines=st.lists(st.tuples(st.booleans(), GOOD, HOSTILE), min_size=1, max_size=8))
def test_every_hostile_line_is_its_own_error_and_the_output_is_strict_json(lines):
    chosen = [(good, ok if good else bad) for good, ok, bad in lines]
    body = b"\n".join(line for _, line in chosen) + b"\n"
    out = output_fn(predict_fn(input_fn(body), LabelsEverything()))
    results = [strict(line) for line in out.split("\n")[:-1]]
    assert len(results) == len(chosen)
    for number, ((good, _), result) in enumerate(zip(chosen, results, strict=True), start=1):
        if good:
            assert result["labels"] == ["move"]
        else:
            assert result["line"] == number and result["error"]
            if "paper_id" in result:  # echoed only when it is a usable id
                assert isinstance(result["paper_id"], int | str)


@FAST
@given(depth=st.integers(1_000, 300_000))
def test_any_nesting_depth_is_one_line_error_never_a_crash(depth):
    try:
        value = decode_line(b"[" * depth + b"]" * depth)
    except LineError as exc:
        assert "nested too deeply" in str(exc)
    else:
        assert isinstance(value, list)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_nan_paper_id_is_never_echoed_as_bare_nan(constant):
    out = output_fn(
        predict_fn(input_fn(f'{{"title": "t", "paper_id": {constant}}}\n'), LabelsEverything())
    )
    result = strict(out)
    assert "paper_id" in result["error"] and "paper_id" not in result
    assert not any(math.isnan(v) for v in result.values() if isinstance(v, float))


def test_a_deep_line_in_an_import_is_that_lines_rejection(db_conn, tmp_path):
    load_taxonomy(db_conn, taxonomy())
    path = tmp_path / "papers.jsonl"
    good = [json.dumps({"doi": f"10.5555/deep.{n}", "title": f"Paper {n}"}) for n in range(200)]
    path.write_bytes(
        "\n".join(good[:100]).encode()
        + b"\n"
        + nested(100_000)
        + b"\n"
        + "\n".join(good[100:]).encode()
        + b"\n"
    )
    report = import_papers(db_conn, path, taxonomy(), tmp_path / "rejects.jsonl")
    assert report.inserted == 200
    [rejected] = [
        json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()
    ]
    assert rejected["line"] == 101 and "nested too deeply" in rejected["reason"]


def test_a_deep_taxonomy_file_is_a_taxonomy_error(tmp_path):
    path = tmp_path / "taxonomy.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(TaxonomyError, match="nested too deeply"):
        Taxonomy.load(path)
    result = CliRunner().invoke(main, ["taxonomy", "load", str(path)])
    assert result.exit_code == 2 and "nested too deeply" in result.output


# Item 8: an output path that is the input is refused before anything is opened ------------
@pytest.mark.parametrize("spelling", ["same", "dot", "hardlink", "symlink"])
def test_rejects_into_the_input_file_is_refused_and_the_input_kept(
    migrated_database_url, tmp_path, spelling
):
    from petal_labeller.store.connection import connect

    conn = connect(migrated_database_url)
    try:
        load_taxonomy(conn, taxonomy())
    finally:
        conn.close()
    path = tmp_path / "papers.jsonl"
    path.write_text(json.dumps({"title": "Shark skin"}) + "\n{bad\n")
    before = path.read_bytes()
    rejects = {
        "same": path,
        "dot": tmp_path / "." / "papers.jsonl",
        "hardlink": tmp_path / "hard.jsonl",
        "symlink": tmp_path / "soft.jsonl",
    }[spelling]
    if spelling == "hardlink":
        os.link(path, rejects)
    if spelling == "symlink":
        rejects.symlink_to(path)
    result = CliRunner().invoke(
        main,
        [
            "--database-url",
            migrated_database_url,
            "papers",
            "import",
            str(path),
            "--rejects",
            str(rejects),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "would overwrite the input" in result.output
    assert path.read_bytes() == before


def test_import_papers_refuses_the_same_file_too(db_conn, tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text("{bad\n")
    with pytest.raises(OutputPathError, match="would overwrite the input"):
        import_papers(db_conn, path, taxonomy(), path)
    assert path.read_text() == "{bad\n"


# Item 9: an empty taxonomy file does not empty the store --------------------------------
def test_loading_an_empty_taxonomy_is_refused_unless_asked_for(migrated_database_url, tmp_path):
    from petal_labeller.store.connection import connect
    from petal_labeller.store.taxonomy import read_taxonomy

    conn = connect(migrated_database_url)
    try:
        load_taxonomy(conn, taxonomy())
    finally:
        conn.close()
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    run = ["--database-url", migrated_database_url, "taxonomy", "load", str(empty)]
    result = CliRunner().invoke(main, run)
    assert result.exit_code == 2 and "refusing" in result.output
    conn = connect(migrated_database_url)
    try:
        assert len(read_taxonomy(conn)) == 131
    finally:
        conn.close()
    assert CliRunner().invoke(main, [*run, "--allow-shrink"]).exit_code == 0
