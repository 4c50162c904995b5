import pytest

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.store.papers import import_papers
from petal_labeller.store.taxonomy import load_taxonomy, read_taxonomy
from petal_labeller.store.unit import StoreError
from petal_labeller.taxonomy import Label, Taxonomy, TaxonomyError
from tests.store.conftest import paper


def test_shared_taxonomy_round_trips_in_file_order(db_conn):
    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    assert load_taxonomy(db_conn, taxonomy) == 131
    stored = read_taxonomy(db_conn)
    assert stored.to_records() == taxonomy.to_records()
    assert load_taxonomy(db_conn, taxonomy) == 131  # again: same tree
    assert read_taxonomy(db_conn).ids == taxonomy.ids


def test_reading_before_loading_says_what_to_do(db_conn):
    with pytest.raises(TaxonomyError, match="petal taxonomy load"):
        read_taxonomy(db_conn)


def test_reload_renames_and_drops_unused_labels(db_conn, tree):
    load_taxonomy(db_conn, tree)
    smaller = Taxonomy([Label("protect", "Protect!", 1, None), Label("move", "Move", 1, None)])
    load_taxonomy(db_conn, smaller, allow_shrink=True)  # drops 3 of 5: asked for explicitly
    assert read_taxonomy(db_conn).to_records() == smaller.to_records()


def test_dropping_a_label_in_use_is_refused(db_conn, tree, write_jsonl):
    load_taxonomy(db_conn, tree)
    import_papers(db_conn, write_jsonl([paper(1, labels=["temperature"])]), tree)
    with pytest.raises(StoreError, match=r"temperature \(1 paper labels\)"):
        load_taxonomy(db_conn, Taxonomy([Label("move", "Move", 1, None)]), allow_shrink=True)
    assert read_taxonomy(db_conn).ids == tree.ids


@pytest.mark.parametrize("kept", [0, 1, 2])
def test_an_empty_or_near_empty_tree_is_refused_unless_asked_for(db_conn, tree, kept):
    load_taxonomy(db_conn, tree)
    smaller = Taxonomy([label for label in tree if label.level == 1][:kept])
    with pytest.raises(StoreError, match="refusing"):
        load_taxonomy(db_conn, smaller)
    assert read_taxonomy(db_conn).ids == tree.ids
    load_taxonomy(db_conn, smaller, allow_shrink=True)
    assert set(read_taxonomy_ids(db_conn)) == {label.id for label in smaller}


def read_taxonomy_ids(conn) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM taxonomy_labels")
        return [row[0] for row in cur.fetchall()]


def test_dropping_a_few_labels_needs_no_flag(db_conn, tree):
    load_taxonomy(db_conn, tree)
    fewer = Taxonomy([label for label in tree if label.id != "active"])
    assert load_taxonomy(db_conn, fewer) == len(tree) - 1
