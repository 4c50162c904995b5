"""The SageMaker handler over a real tiny artefact: batches, bad lines, hierarchy, fast paths."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.model.artefact import check_taxonomy, unpack
from petal_labeller.model.metrics import precision_at_k
from petal_labeller.model.predict import predict_file
from petal_labeller.runtime import handlers as inference
from petal_labeller.runtime.errors import ArtefactError
from petal_labeller.taxonomy import Taxonomy
from tests.fixtures.model import read_jsonl

pytestmark = pytest.mark.slow

TAXONOMY = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")


def shared_papers(n: int) -> list[dict]:
    lines = (SHARED_DATA_DIR / "labelled_papers.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[-n:]]


@pytest.fixture(scope="module")
def model_dir(tiny_model_tar, tmp_path_factory):
    return unpack(tiny_model_tar, tmp_path_factory.mktemp("unpacked"))


@pytest.fixture(scope="module")
def fp32_model(model_dir):
    return inference.model_fn(model_dir, precision="fp32")


def test_predict_file_round_trips_many_papers_and_reports_bad_lines(tiny_model_tar, tmp_path):
    papers = shared_papers(70)
    for i, paper in enumerate(papers):
        paper["paper_id"] = 1000 + i
        paper.pop("labels")
    lines = [json.dumps(p) for p in papers]
    lines.insert(3, "{not json")
    lines.insert(10, json.dumps({"paper_id": 5, "title": " ", "abstract": ""}))
    lines.insert(20, json.dumps({"title": ["a list"], "abstract": "x"}))
    body = "\n".join(lines).encode() + b"\n" + b'{"title": "caf\xe9"}\n'
    papers_in = tmp_path / "in.jsonl"
    papers_in.write_bytes(body)

    summary = predict_file(tiny_model_tar, papers_in, tmp_path / "out.jsonl", batch_size=16)

    out = read_jsonl(tmp_path / "out.jsonl")
    assert len(out) == len(lines) + 1 == summary.lines
    assert summary.labelled == 70
    assert [e["line"] for e in summary.errors] == [4, 11, 21, 74]
    assert out[10] == {
        "line": 11,
        "paper_id": 5,
        "error": "fields 'title' and 'abstract' are both empty",
    }
    assert "'title'" in out[20]["error"]
    assert "UTF-8" in out[73]["error"]
    good = [line for line in out if "error" not in line]
    assert [line["paper_id"] for line in good] == [1000 + i for i in range(70)]
    assert [line["doi"] for line in good] == [p["doi"] for p in papers]
    for line in good:
        assert list(line["scores"]) == TAXONOMY.ids
        assert all(0.0 <= s <= 1.0 for s in line["scores"].values())
        assert line["labels"], "every paper gets at least one label"
        assert TAXONOMY.is_consistent(line["labels"])
        assert line["scores"] == TAXONOMY.cap_scores(line["scores"]), "no label above its parent"


def test_handler_functions_match_sagemaker_contract(fp32_model):
    body = (
        json.dumps({"title": "Shark skin denticles reduce drag", "abstract": None, "paper_id": 1})
        + "\n"
        + json.dumps({"title": "Lotus leaf", "abstract": "x " * 50_000, "venue": None})
        + "\n"
    )
    output = inference.output_fn(
        inference.predict_fn(inference.input_fn(body, "application/jsonlines"), fp32_model),
        "application/jsonlines",
    )
    first, second = (json.loads(line) for line in output.splitlines())
    assert list(first) == ["doi", "title", "paper_id", "scores", "labels"]
    assert "paper_id" not in second and second["labels"], "huge abstract is truncated, not failed"
    with pytest.raises(ValueError, match="content type"):
        inference.input_fn(body, "text/csv")


def test_batching_does_not_change_scores(model_dir, fp32_model):
    papers = shared_papers(20)
    single = inference.model_fn(model_dir, precision="fp32", batch_size=1)
    np.testing.assert_allclose(single.score(papers), fp32_model.score(papers), atol=1e-5)


def test_fast_cpu_path_stays_within_tolerance_of_fp32(model_dir, fp32_model, tiny_training_data):
    # The tiny model has barely trained, so on unseen papers its scores are
    # near-ties that any rounding reorders; on its own papers the ranking is
    # real. benchmarks/inference.py checks the same on the full model, held out.
    papers = read_jsonl(tiny_training_data[0])
    gold = np.array([[label in p["labels"] for label in TAXONOMY.ids] for p in papers], float)
    fast = inference.model_fn(model_dir, precision="bf16")
    assert fast.precision == "bf16"
    exact, approx = fp32_model.score(papers), fast.score(papers)
    assert np.abs(exact - approx).max() < 0.01
    for k in (1, 3, 5):
        assert abs(precision_at_k(approx, gold, k) - precision_at_k(exact, gold, k)) < 0.005


def test_auto_precision_picks_a_path_that_runs(model_dir):
    model = inference.model_fn(model_dir)  # bf16 where the CPU has it, else fp32
    assert model.precision in ("bf16", "fp32")
    assert model.predict([{"title": "Beetles harvest fog water"}])[0]["labels"]


def test_missing_file_is_named(model_dir, tmp_path):
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    (broken / "thresholds.json").unlink()
    with pytest.raises(ArtefactError, match=r"missing file thresholds\.json"):
        inference.model_fn(broken)


def test_label_list_not_matching_the_head_is_refused(model_dir, tmp_path):
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    labels = json.loads((broken / "labels.json").read_text())
    (broken / "labels.json").write_text(json.dumps(labels[:-1]))
    with pytest.raises(ArtefactError, match=r"labels\.json lists 130 labels"):
        inference.model_fn(broken)


def test_wrong_taxonomy_is_refused(tiny_model_tar, fp32_model):
    records = TAXONOMY.to_records()
    other = Taxonomy.from_records([*records[:-1], {**records[-1], "id": "fly_backwards"}])
    with pytest.raises(ArtefactError, match="does not match the taxonomy"):
        check_taxonomy(fp32_model, other)
    check_taxonomy(fp32_model, TAXONOMY)
    from petal_labeller.runtime.load import load_model

    model = load_model(tiny_model_tar, precision="fp32")
    check_taxonomy(model, TAXONOMY)
    assert model.label_ids == TAXONOMY.ids
