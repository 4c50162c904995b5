"""The references and deletes of paper_labels are served by indexes (issue 12 item 10, 0005).

The plans are shown with sequential scans priced out (`enable_seqscan = off`), so
a tiny test table gives the plan a large one would: an index the planner can
use appears, and without one the plan stays a sequential scan.
"""

from __future__ import annotations

import pytest


def plan(conn, sql: str, params: tuple = ()) -> str:
    with conn.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("EXPLAIN " + sql, params)
        text = "\n".join(row[0] for row in cur.fetchall())
    conn.rollback()
    print(text)  # shown with pytest -s: the plan itself is the evidence
    return text


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        # The label key's check per deleted label; load_taxonomy's in-use count.
        ("SELECT 1 FROM paper_labels pl WHERE pl.label_id = %s", "paper_labels_label"),
        (
            "SELECT label_id, count(*) FROM paper_labels WHERE label_id = ANY(%s) GROUP BY 1",
            "paper_labels_label",
        ),
        # The self-reference of taxonomy_labels, checked for each deleted label.
        ("SELECT 1 FROM taxonomy_labels WHERE parent = %s", "taxonomy_labels_parent"),
        # The paper key's cascade (paper deleted), then the labelling key's (mark deleted).
        ("DELETE FROM paper_labels WHERE paper_id = %s", "paper_labels_paper"),
        (
            "DELETE FROM paper_labels WHERE paper_id = %s AND model_version = 'v1'",
            "paper_labels_paper",
        ),
    ],
)
def test_reference_lookups_use_an_index(db_conn, sql, index):
    param = (["swim", "fly"],) if "ANY" in sql else (7 if "paper_id" in sql else "swim",)
    shown = plan(db_conn, sql, param)
    assert index in shown and "Seq Scan" not in shown
