"""After a promotion, `petal_relabel_papers` gives every paper the new model's labels."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime

import pytest

from petal_labeller.store.connection import connect
from tests.fixtures.airflow import RUN_DATE_ISO, load_dag

pytestmark = pytest.mark.slow


def _query(url: str, sql: str) -> list[tuple]:
    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_papers_labelled_by_an_older_version_are_relabelled(
    airflow_db, labelling_database, petal_home, tiny_model_tar
):
    from petal_labeller.store.models import register_model_version

    url = labelling_database
    daily = load_dag("petal_label_papers").test(logical_date=datetime.fromisoformat(RUN_DATE_ISO))
    assert daily.state == "success"
    with closing(connect(url)) as conn:
        register_model_version(
            conn, "tiny-2", base_model="all-MiniLM-L6-v2", artefact_uri=str(tiny_model_tar),
            promote=True,
        )  # fmt: skip

    run = load_dag("petal_relabel_papers").test(logical_date=datetime(2026, 12, 1, tzinfo=UTC))

    assert run.state == "success"
    by_version = dict(_query(url, "SELECT model_version, count(*) FROM paper_labelling GROUP BY 1"))
    assert by_version == {"tiny": 11, "tiny-2": 11}
    # Same artefact, so the new version's labels equal the old ones, paper for paper.
    old, new = (
        set(_query(url, f"SELECT paper_id, label_id FROM paper_labels WHERE model_version = '{v}'"))
        for v in ("tiny", "tiny-2")
    )
    assert old == new and old
    ((start, end),) = _query(
        url,
        "SELECT interval_start, interval_end FROM labelling_runs WHERE model_version = 'tiny-2'",
    )
    assert (start, end) == (None, None), "relabelling is not limited to a window"
