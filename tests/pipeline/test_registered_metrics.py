"""One artefact, one set of numbers (issue 23 item 11): the training DAG records the
held-out scores its gate compared; registering the same artefact again by hand must
record those, not the card's validation scores (0.6657 vs 0.5840289371174179 before)."""

from __future__ import annotations

import shutil
from contextlib import closing

from petal_labeller.model.artefact import read_card
from petal_labeller.pipeline.promotion import register_model
from petal_labeller.pipeline.training import promote_model
from petal_labeller.store.connection import connect
from petal_labeller.store.models import get_model_version

HELD_OUT = {"micro_F1": 0.6657, "P@1": 0.7712, "P@3": 0.5123}


def _metrics(url: str, version: str) -> dict:
    with closing(connect(url)) as conn:
        return get_model_version(conn, version).metrics


def test_the_same_artefact_registered_again_keeps_the_dags_held_out_numbers(
    labelling_database, tiny_model_tar, petal_home
):
    dag = promote_model("v-dag", tiny_model_tar, HELD_OUT, "all-MiniLM-L6-v2", labelling_database)
    copied = petal_home / "elsewhere.tar.gz"
    shutil.copyfile(dag.artefact_uri, copied)  # the same bytes, under another name

    register_model("v-cli", str(copied), database_url=labelling_database)

    assert (
        _metrics(labelling_database, "v-cli") == HELD_OUT == _metrics(labelling_database, "v-dag")
    )


def test_a_new_artefact_records_its_cards_metrics_rounded_as_the_dags(
    labelling_database, tiny_model_tar, petal_home
):
    card = {
        k: v for k, v in read_card(tiny_model_tar)["metrics"].items() if not isinstance(v, bool)
    }

    register_model("v-new", str(tiny_model_tar), database_url=labelling_database)

    recorded = _metrics(labelling_database, "v-new")
    assert recorded and recorded == {name: round(float(value), 4) for name, value in card.items()}
