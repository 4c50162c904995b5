"""Choosing a review batch: the most uncertain, a diverse spread, or both."""

from __future__ import annotations

import pytest

from petal_labeller.review.errors import ReviewError
from petal_labeller.review.selection import pick_diverse, select_papers
from tests.review.conftest import TREE

TOPICS = {
    "gecko": ["Gecko feet adhere to glass", "Gecko setae adhesion on walls",
              "Adhesion of gecko toe pads"],
    "shark": ["Shark skin denticles reduce drag", "Drag reduction by shark denticles",
              "Shark skin riblets and drag"],
    "lotus": ["Lotus leaves repel water", "Superhydrophobic lotus leaf wax",
              "Water repellent lotus surfaces"],
}  # fmt: skip


def test_diverse_picks_one_paper_per_topic():
    texts = [t for group in TOPICS.values() for t in group]
    topic = {i: name for i, name in enumerate(n for n, g in TOPICS.items() for _ in g)}
    picked = pick_diverse(texts, 3, seed=0)
    assert len(picked) == 3 and {topic[i] for i in picked} == set(TOPICS)


def test_weights_pull_the_pick_to_the_uncertain_paper_of_a_topic():
    texts = TOPICS["gecko"] + TOPICS["shark"]
    weights = [0.01, 0.01, 0.9, 0.01, 0.9, 0.01]
    picked = set(pick_diverse(texts, 2, weights, seed=0))
    assert len(picked) == 2 and {texts[i][:5] for i in picked} == {"Adhes", "Drag "}


def test_texts_without_words_still_fill_the_batch():
    assert pick_diverse(["the", "a", "of", "and"], 2) == [0, 1]
    assert pick_diverse(["only one"], 3) == [0]


def test_uncertain_is_the_queues_order(store):
    records = select_papers(store["conn"], TREE, 2, "uncertain", neighbours=0)
    assert [r["paper_id"] for r in records] == [store["ids"]["torn"], store["ids"]["deep"]]
    assert records[0]["uncertainty"] == 0.4667 and records[0]["model_version"] == "v1"


@pytest.mark.parametrize("selection", ["diverse", "mixed"])
def test_diverse_and_mixed_send_distinct_queue_papers_most_uncertain_first(store, selection):
    records = select_papers(store["conn"], TREE, 2, selection, neighbours=0)
    uncertainty = [r["uncertainty"] for r in records]
    assert len({r["paper_id"] for r in records}) == 2 and uncertainty == sorted(uncertainty)[::-1]
    queue = {store["ids"][k] for k in ("sure", "torn", "deep")}
    assert {r["paper_id"] for r in records} <= queue


def test_a_bad_selection_or_size_is_unusable(store):
    with pytest.raises(ReviewError, match="selection must be one of uncertain, diverse, mixed"):
        select_papers(store["conn"], TREE, 2, "random")
    with pytest.raises(ReviewError, match="papers must be 1 to 10000"):
        select_papers(store["conn"], TREE, 0)
