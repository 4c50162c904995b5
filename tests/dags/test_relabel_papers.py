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


def _promote_tiny_2(url: str, tiny_model_tar) -> None:
    from petal_labeller.store.models import register_model_version

    with closing(connect(url)) as conn:
        register_model_version(
            conn, "tiny-2", base_model="all-MiniLM-L6-v2", artefact_uri=str(tiny_model_tar),
            promote=True,
        )  # fmt: skip


def _relabel_run(url: str) -> tuple:
    ((changed, labelled, written, start, end),) = _query(
        url,
        "SELECT papers_changed, papers_labelled, labels_written, interval_start, interval_end "
        "FROM labelling_runs WHERE model_version = 'tiny-2'",
    )
    return changed, labelled, written, start, end


def test_a_relabel_with_an_identical_model_writes_no_paper(
    airflow_db, labelling_database, petal_home, tiny_model_tar
):
    url = labelling_database
    daily = load_dag("petal_label_papers").test(logical_date=datetime.fromisoformat(RUN_DATE_ISO))
    assert daily.state == "success"
    _promote_tiny_2(url, tiny_model_tar)

    run = load_dag("petal_relabel_papers").test(logical_date=datetime(2026, 12, 1, tzinfo=UTC))

    assert run.state == "success"
    by_version = dict(_query(url, "SELECT model_version, count(*) FROM paper_labelling GROUP BY 1"))
    assert by_version == {"tiny": 11, "tiny-2": 11}, "every paper is labelled by tiny-2"
    # Same artefact: every paper's labels are unchanged, so none is written.
    changed, labelled, written, start, end = _relabel_run(url)
    assert (changed, labelled, written) == (0, 11, 0)
    assert _query(url, "SELECT count(*) FROM paper_labels WHERE model_version = 'tiny-2'") == [(0,)]
    assert _query(
        url,
        "SELECT DISTINCT labels_version FROM paper_labelling WHERE model_version = 'tiny-2'",
    ) == [("tiny",)]
    assert (start, end) == (None, None), "relabelling is not limited to a window"


def test_a_relabel_writes_exactly_the_papers_whose_labels_change(
    airflow_db, labelling_database, petal_home, tiny_model_tar
):
    url = labelling_database
    daily = load_dag("petal_label_papers").test(logical_date=datetime.fromisoformat(RUN_DATE_ISO))
    assert daily.state == "success"
    # The model the store holds labels from differs from the promoted one on three papers:
    # one score moved beyond rounding, one label dropped, one label added.
    ids = [row[0] for row in _query(url, "SELECT id FROM papers ORDER BY id")]
    moved, dropped, added = ids[:3]
    with closing(connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE paper_labels SET score = score * 0.9 WHERE paper_id = %s AND origin = 'model'",
            (moved,),
        )
        cur.execute(
            """DELETE FROM paper_labels WHERE (paper_id, label_id) IN (
                   SELECT paper_id, label_id FROM paper_labels
                   WHERE paper_id = %s AND origin = 'model' ORDER BY score LIMIT 1)""",
            (dropped,),
        )
        cur.execute(
            """INSERT INTO paper_labels (paper_id, label_id, origin, score, model_version)
               SELECT %s, t.id, 'model', 0.01, 'tiny' FROM taxonomy_labels t
               WHERE NOT EXISTS (SELECT 1 FROM paper_labels pl
                                 WHERE pl.paper_id = %s AND pl.label_id = t.id)
               ORDER BY t.position LIMIT 1""",
            (added, added),
        )
    _promote_tiny_2(url, tiny_model_tar)

    run = load_dag("petal_relabel_papers").test(logical_date=datetime(2026, 12, 1, tzinfo=UTC))

    assert run.state == "success"
    changed, labelled, _, _, _ = _relabel_run(url)
    assert (changed, labelled) == (3, 11)
    written = {row[0] for row in _query(
        url, "SELECT DISTINCT paper_id FROM paper_labels WHERE model_version = 'tiny-2'"
    )}  # fmt: skip
    assert written <= {moved, dropped, added}
    own = {row[0] for row in _query(
        url,
        "SELECT paper_id FROM paper_labelling WHERE model_version = 'tiny-2' "
        "AND labels_version IS NULL",
    )}  # fmt: skip
    assert own == {moved, dropped, added}
