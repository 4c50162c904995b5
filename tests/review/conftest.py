"""A small store for review tests: a label tree, papers, a production model and its labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from petal_labeller.review import build_queue, record_queue
from petal_labeller.store.labels import upsert_model_labels
from petal_labeller.store.models import register_model_version
from petal_labeller.store.papers import import_papers
from petal_labeller.store.taxonomy import load_taxonomy
from petal_labeller.taxonomy import Label, Taxonomy

TREE = Taxonomy(
    [
        Label("protect", "Protect from harm", 1, None),
        Label("heat", "Protect from temperature", 2, "protect"),
        Label("cold", "Protect from cold", 2, "protect"),
        Label("move", "Move", 1, None),
        Label("swim", "Swim", 2, "move"),
    ]
)
#: Model labels and scores of the uncurated papers (DOI suffix -> scores).
MODEL_SCORES = {
    "sure": {"move": 0.97, "swim": 0.95},  # confident: last in the queue (0.027)
    "torn": {"protect": 0.5, "heat": 0.3},  # a coin-flip level-1 label: first (0.467)
    "deep": {"protect": 0.95, "heat": 0.5},  # sure of the branch, torn below it (0.191)
}


def paper(key: str, **fields) -> dict:
    record = {
        "doi": f"10.5555/{key}",
        "title": f"Paper {key}",
        "abstract": f"An abstract about {key}.",
        "venue": ["Journal"],
        "url": None,
    }
    record.update(fields)
    return record


@pytest.fixture
def store(db_conn, tmp_path: Path) -> dict:
    """Curated papers (a swimming fish, a heat-shielding beetle), three model-labelled ones,
    queued for review; `papers` names each as a decision line does (paper_id and doi)."""
    load_taxonomy(db_conn, TREE)
    records = [
        paper("fish", title="Fish swim fast in cold water", labels=["move", "swim"]),
        paper("beetle", title="Beetle shells shield heat", labels=["protect", "heat"]),
        paper("sure", title="How eels swim"),
        paper("torn", title="Heat shock proteins shield cells"),
        paper("deep", title="Desert snails and heat"),
    ]
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    import_papers(db_conn, path, TREE)
    register_model_version(db_conn, "v1", base_model="test", artefact_uri="x", promote=True)
    with db_conn.cursor() as cur:
        cur.execute("SELECT doi, id FROM papers")
        ids = {doi.split("/")[1]: paper_id for doi, paper_id in cur.fetchall()}
    rows = [
        (ids[key], label, s) for key, scores in MODEL_SCORES.items() for label, s in scores.items()
    ]
    upsert_model_labels(db_conn, rows, "v1")
    record_queue(db_conn, build_queue(db_conn, TREE, limit=10, neighbours=0))
    named = {key: {"paper_id": i, "doi": f"10.5555/{key}"} for key, i in ids.items()}
    return {"conn": db_conn, "ids": ids, "taxonomy": TREE, "papers": named}


def curator_labels(conn, paper_id: int) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT label_id, curated_by FROM paper_labels
               WHERE paper_id = %s AND origin = 'curator' ORDER BY label_id""",
            (paper_id,),
        )
        return cur.fetchall()
