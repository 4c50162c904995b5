"""The default (stacked) recipe end to end on real papers: train, save, serve without sklearn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.model.artefact import unpack
from petal_labeller.model.metrics import precision_at_k
from petal_labeller.runtime import handlers as inference
from petal_labeller.taxonomy import Taxonomy
from tests.fixtures.model import read_jsonl, tiny_config

pytestmark = pytest.mark.slow

TAXONOMY = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")


@pytest.fixture(scope="module")
def model_dir(tiny_model_tar, tmp_path_factory):
    return unpack(tiny_model_tar, tmp_path_factory.mktemp("stack"))


def test_default_artefact_is_a_stack_of_numpy_arrays_and_json(model_dir):
    settings = json.loads((model_dir / "labeller.json").read_text())
    assert settings["combiner"] == "stack"
    assert list(settings["scorers"]) == ["tfidf", "knn", "zeroshot", "venue"]
    names = {p.name for p in model_dir.rglob("*") if p.is_file()}
    assert {"stack.json", "stack.safetensors", "tfidf.json", "knn.safetensors"} <= names
    assert "head.safetensors" not in names, "the stack has no trained head to ship"
    assert all(n.endswith((".json", ".safetensors", ".py", ".txt")) for n in names), names
    blocks = json.loads((model_dir / "tfidf.json").read_text())["blocks"]
    assert [b["analyzer"] for b in blocks] == ["word", "char_wb"]


def test_stack_learns_to_rank_held_out_papers():
    """150 real papers are enough for the combiner to beat the label prior clearly on 60 others
    (24 are not: two inner folds of 12 papers teach it little)."""
    from petal_labeller.model.data import load_labelled
    from petal_labeller.model.train import fit

    papers = load_labelled(SHARED_DATA_DIR / "labelled_papers.jsonl", TAXONOMY)
    train, test = papers[:150], papers[150:210]
    trained = fit(train, TAXONOMY, tiny_config(tune_folds=5), progress=False)
    records = [p.record for p in test]
    scores = trained.model.score(records)
    gold = np.array([[label in p.labels for label in TAXONOMY.ids] for p in test], float)
    train_gold = np.array([[label in p.labels for label in TAXONOMY.ids] for p in train], float)
    prior = np.tile(train_gold.mean(0), (len(test), 1))
    for k in (1, 3):
        assert precision_at_k(scores, gold, k) > precision_at_k(prior, gold, k) + 0.15
    for result in trained.model.predict(records):
        assert result["labels"] and TAXONOMY.is_consistent(result["labels"])
        assert result["scores"] == TAXONOMY.cap_scores(result["scores"])


def test_one_encoder_pass_per_paper_feeds_knn_and_zero_shot(model_dir):
    model = inference.model_fn(model_dir, precision="fp32")
    pooled_rows = []
    pool = model.net.pool

    def counting_pool(input_ids, attention_mask):
        pooled_rows.append(len(input_ids))
        return pool(input_ids, attention_mask)

    model.net.pool = counting_pool
    papers = [{"title": f"Paper {i} on gecko adhesion", "venue": "Nature"} for i in range(5)]
    model.score(papers)
    assert sum(pooled_rows) == len(papers)


def test_bad_lines_pass_through_the_stack(model_dir):
    model = inference.model_fn(model_dir, precision="fp32")
    body = b'{"title": "Shark skin", "venue": ["J Exp Biol", 3]}\n{"title": 1}\nnot json\n'
    out = inference.predict_fn(inference.input_fn(body), model)
    assert out[0]["error"] == "field 'venue' must be a string, a list of strings or null"
    assert out[1]["line"] == 2 and "'title'" in out[1]["error"]
    assert out[2]["line"] == 3 and "not valid JSON" in out[2]["error"]
    good = inference.predict_fn(
        inference.input_fn(b'{"title": "Shark skin", "venue": []}\n'), model
    )
    assert good[0]["labels"]


def test_runtime_serves_without_scikit_learn_or_the_upper_layers(model_dir, tiny_training_data):
    """petal_labeller.runtime, imported with scikit-learn, scipy and every package above it
    made unimportable, scores exactly what the training side's model does."""
    papers = read_jsonl(tiny_training_data[0])[:6]
    blocked = ["sklearn", "scipy", "airflow"] + [
        f"petal_labeller.{name}" for name in ("model", "pipeline", "store", "sagemaker", "cli")
    ]
    script = f"""
import json, sys
sys.modules.update(dict.fromkeys({blocked!r}))
from petal_labeller.runtime.handlers import model_fn
model = model_fn({str(model_dir)!r}, precision="fp32")
papers = json.loads(sys.stdin.read())
print(json.dumps(model.score(papers).tolist()))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(papers),
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    served = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    expected = inference.model_fn(model_dir, precision="fp32").score(papers)
    np.testing.assert_allclose(served, expected, atol=1e-6)


def test_venue_scorer_uses_known_venues_and_falls_back_to_the_prior():
    from petal_labeller.model.stacking import fit_venues

    records = [{"venue": "A"}, {"venue": ["A", "B"]}, {"venue": None}, {"venue": "B"}]
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    scorer = fit_venues(records, targets)
    prior = targets.mean(0)
    a = (np.array([2, 0]) + 2 * prior) / (2 + 2)
    b = (np.array([1, 1]) + 2 * prior) / (2 + 2)
    scores = scorer.scores([{"venue": "A"}, {"venue": ["A", "B", "C"]}, {"venue": "C"}, {}])
    np.testing.assert_allclose(scores, [a, (a + b) / 2, prior, prior], atol=1e-6)


def test_refit_on_prepared_inputs_is_the_recipe_fit_on_those_papers():
    """Benchmarks encode every paper once and refit on subsets (`prepare` + `fit_prepared`):
    the subset's model must label papers exactly as `fit` on the subset alone does."""
    from petal_labeller.model.data import load_labelled
    from petal_labeller.model.stacking import STACK, fit_prepared, predict_prepared, prepare

    papers = load_labelled(SHARED_DATA_DIR / "labelled_papers.jsonl", TAXONOMY)[:90]
    config = tiny_config()
    model, everything = prepare(papers, TAXONOMY, config)
    rows, test = list(range(10, 70)), list(range(70, 90))
    fit_prepared(model, everything.subset(rows), [papers[i].labels for i in rows], TAXONOMY, config)
    scores, chosen = predict_prepared(model, everything.subset(test))

    alone = STACK.fit([papers[i] for i in rows], TAXONOMY, config, progress=False).model
    served = alone.predict([papers[i].record for i in test])
    np.testing.assert_allclose(scores, alone.score([papers[i].record for i in test]), atol=1e-5)
    for row, result in zip(chosen, served, strict=True):
        assert [TAXONOMY.ids[c] for c in np.flatnonzero(row)] == sorted(
            result["labels"], key=TAXONOMY.ids.index
        )
