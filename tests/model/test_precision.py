"""The fast precision is kept only where the artefact's check papers say it keeps the scores."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from petal_labeller.model.artefact import unpack
from petal_labeller.model.checks import MAX_SCANNED, check_record, spread
from petal_labeller.model.checks import check_papers as pick_check_papers
from petal_labeller.model.data import load_labelled
from petal_labeller.runtime import handlers
from petal_labeller.runtime.precision import (
    CHECK_LIMIT,
    LONG_CHECK_PAPERS,
    check_papers,
    label_name_papers,
    native_bf16,
    score_drift,
    verified_precision,
)
from petal_labeller.runtime.text import CHARS_PER_TOKEN_BOUND, validate_paper
from petal_labeller.runtime.validate import CHECK_PAPERS_FILE, check_paper_records
from petal_labeller.taxonomy import Taxonomy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tiny_model_tar, tmp_path_factory):
    return unpack(tiny_model_tar, tmp_path_factory.mktemp("m"))


@pytest.fixture(scope="module")
def model(folder):
    return handlers.model_fn(folder, "fp32")


@pytest.fixture(scope="module")
def written(folder):
    """The real papers training wrote into the artefact."""
    return json.loads((folder / CHECK_PAPERS_FILE).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def drift(model, written):
    """bf16's largest move on the written check papers (emulated where the CPU lacks bf16)."""
    return score_drift(model, "bf16", written)


def test_a_trained_artefact_carries_real_check_papers_and_the_guard_reads_them(
    model, written, tiny_training_data
):
    papers_path, _ = tiny_training_data
    shared = [json.loads(line) for line in papers_path.read_text(encoding="utf-8").splitlines()]
    titles = {paper["title"] for paper in shared}
    assert written and all(paper["title"] in titles for paper in written), "real papers"
    assert all(set(paper) <= {"title", "abstract", "venue"} for paper in written)
    limit = model.max_length * CHARS_PER_TOKEN_BOUND
    assert all(len(paper.get("abstract") or "") <= limit for paper in written)
    assert check_paper_records(json.dumps(written).encode(), "test") == written
    assert check_papers(model) == written


@pytest.fixture(scope="module")
def papers(tiny_training_data):
    papers_path, taxonomy_path = tiny_training_data
    return load_labelled(papers_path, Taxonomy.load(taxonomy_path))


def test_check_papers_are_the_ones_bf16_moves_most(model, papers):
    chosen = pick_check_papers(model, papers, count=4)
    assert chosen == pick_check_papers(model, papers, count=4), "deterministic"
    assert len({p["title"] for p in chosen}) == 4
    limit = model.max_length * CHARS_PER_TOKEN_BOUND
    every = [check_record(p, limit) for p in papers]
    assert all(p in every for p in chosen), "real papers, cut as the model reads them"
    worst = score_drift(model, "bf16", every)
    assert score_drift(model, "bf16", chosen) == pytest.approx(worst, rel=0.05), "the worst is in"
    handful = [check_record(p, limit) for p in spread(papers, 4)]
    assert score_drift(model, "bf16", handful) < worst, "unlike a spread-out handful"


def test_spread_covers_short_to_long_abstracts_and_check_records_hold_no_more():
    from petal_labeller.model.data import LabelledPaper

    many = [
        LabelledPaper(i, {"title": f"T{i}", "abstract": "w" * i, "doi": "10.1/x"}, ("move",))
        for i in range(1, MAX_SCANNED + 50)
    ]
    picked = spread(many, 4)
    lengths = [len(p.record["abstract"]) for p in picked]
    assert lengths == sorted(set(lengths)), "four different lengths, short to long"
    assert lengths[0] < len(many) / 4 and lengths[-1] > 3 * len(many) / 4, "both ends"
    assert len(spread(many, MAX_SCANNED + 1000)) == len(many), "at most all"
    assert check_record(many[99], 10) == {"title": "T100", "abstract": "w" * 10}, "no DOI"


def test_an_artefact_without_check_papers_loads_and_falls_back_to_label_names(folder, tmp_path):
    older = shutil.copytree(folder, tmp_path / "older")
    (older / CHECK_PAPERS_FILE).unlink()
    model = handlers.model_fn(older, "fp32")
    assert model.check_papers is None
    assert check_papers(model) == label_name_papers(model)


def test_label_name_papers_are_the_label_paths_short_and_at_full_length(model):
    papers = label_name_papers(model)
    assert len(papers) == len(model.label_ids) + LONG_CHECK_PAPERS
    assert all(validate_paper(p) is p for p in papers)
    assert " > " in papers[len(model.label_ids) - 1]["title"], "child labels carry their path"
    long_ids = model.tokenizer([p["abstract"] for p in papers[-LONG_CHECK_PAPERS:]])["input_ids"]
    assert min(map(len, long_ids)) >= model.max_length, "long check papers fill the model"


def test_bf16_that_moves_scores_past_the_limit_falls_back_to_fp32_with_a_log_line(
    model, drift, caplog
):
    assert 0 < drift < 1, "bf16 really ran and really moved the scores a little"
    names = score_drift(model, "bf16", label_name_papers(model))
    assert f"{names:.4f}" != f"{drift:.4f}", "the log line below tells which papers were scored"
    assert model.precision == "fp32", "measuring leaves the model as it was"
    with caplog.at_level(logging.WARNING, logger="petal_labeller.runtime.precision"):
        assert verified_precision(model, "bf16", limit=drift) == "fp32"
    assert "using fp32" in caplog.text and f"{drift:.4f}" in caplog.text


def test_bf16_within_the_limit_is_kept(model, drift, caplog):
    with caplog.at_level(logging.WARNING, logger="petal_labeller.runtime.precision"):
        assert verified_precision(model, "bf16", limit=drift * 2) == "bf16"
    assert not caplog.text
    assert verified_precision(model, "fp32", limit=0.0) == "fp32", "fp32 needs no check"


def test_auto_keeps_only_a_checked_precision(tiny_model_tar, tmp_path):
    auto = handlers.model_fn(unpack(tiny_model_tar, tmp_path), "auto")
    if not native_bf16():
        assert auto.precision == "fp32", "no native bf16: auto runs fp32"
    elif auto.precision == "bf16":
        assert score_drift(auto, "bf16", check_papers(auto)) < CHECK_LIMIT
