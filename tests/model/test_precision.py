"""The fast precision is kept only where the artefact's check papers say it keeps the scores."""

from __future__ import annotations

import logging

import pytest

from petal_labeller.model.artefact import unpack
from petal_labeller.runtime import handlers
from petal_labeller.runtime.precision import (
    CHECK_LIMIT,
    LONG_CHECK_PAPERS,
    check_papers,
    native_bf16,
    score_drift,
    verified_precision,
)
from petal_labeller.runtime.text import validate_paper

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tiny_model_tar, tmp_path_factory):
    return handlers.model_fn(unpack(tiny_model_tar, tmp_path_factory.mktemp("m")), "fp32")


@pytest.fixture(scope="module")
def drift(model):
    """bf16's largest move on the check papers (bf16 is emulated where the CPU lacks it: slow)."""
    return score_drift(model, "bf16", check_papers(model))


def test_check_papers_are_the_artefacts_label_paths_short_and_at_full_length(model):
    papers = check_papers(model)
    assert len(papers) == len(model.label_ids) + LONG_CHECK_PAPERS
    assert all(validate_paper(p) is p for p in papers)
    assert " > " in papers[len(model.label_ids) - 1]["title"], "child labels carry their path"
    long_ids = model.tokenizer([p["abstract"] for p in papers[-LONG_CHECK_PAPERS:]])["input_ids"]
    assert min(map(len, long_ids)) >= model.max_length, "long check papers fill the model"


def test_bf16_that_moves_scores_past_the_limit_falls_back_to_fp32_with_a_log_line(
    model, drift, caplog
):
    assert 0 < drift < 1, "bf16 really ran and really moved the scores a little"
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
