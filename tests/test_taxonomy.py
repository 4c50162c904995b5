import pytest

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.taxonomy import Label, Taxonomy, TaxonomyError


@pytest.fixture
def tree() -> Taxonomy:
    return Taxonomy(
        [
            Label("protect", "Protect from harm", 1, None),
            Label("non_living", "Protect from non-living threats", 2, "protect"),
            Label("temperature", "Protect from temperature", 3, "non_living"),
            Label("move", "Move", 1, None),
        ]
    )


def test_shared_taxonomy_has_131_labels_on_three_levels():
    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    assert len(taxonomy) == 131
    levels = [label.level for label in taxonomy]
    assert (levels.count(1), levels.count(2), levels.count(3)) == (10, 27, 94)


def test_ancestors_are_parent_first(tree):
    assert tree.ancestors("temperature") == ("non_living", "protect")
    assert tree.ancestors("protect") == ()


def test_close_upwards_adds_every_ancestor(tree):
    assert tree.close_upwards(["temperature", "move"]) == [
        "protect",
        "non_living",
        "temperature",
        "move",
    ]
    assert not tree.is_consistent(["temperature"])
    assert tree.is_consistent(tree.close_upwards(["temperature"]))


def test_cap_scores_never_lets_a_child_outrank_its_parent(tree):
    capped = tree.cap_scores({"protect": 0.4, "non_living": 0.9, "temperature": 0.7, "move": 0.1})
    assert capped == {"protect": 0.4, "non_living": 0.4, "temperature": 0.4, "move": 0.1}


def test_unknown_parent_is_named():
    with pytest.raises(TaxonomyError, match=r"'orphan'.*'parent'"):
        Taxonomy([Label("orphan", "Orphan", 2, "nowhere")])


def test_unknown_label_lookup_is_named(tree):
    with pytest.raises(TaxonomyError, match="'nope'"):
        tree.ancestors("nope")
