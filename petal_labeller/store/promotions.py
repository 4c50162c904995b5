"""What a promotion decision reads and writes: a sample of one model's labelled papers
(for a candidate's dry relabel) and the decision on a candidate (who, when, why)."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions

_SAMPLE = """
SELECT p.id, p.doi, p.title, p.abstract, p.venue, p.url,
       COALESCE(array_agg(l.label_id ORDER BY l.label_id)
                FILTER (WHERE l.label_id IS NOT NULL), '{}')
FROM paper_labelling pl
JOIN papers p ON p.id = pl.paper_id
LEFT JOIN paper_labels l ON l.paper_id = pl.paper_id AND l.model_version = pl.model_version
     AND l.origin = 'model'
WHERE pl.model_version = %(version)s
GROUP BY p.id
-- A stable pseudo-random sample: the same papers for every candidate compared.
ORDER BY md5(p.id::text), p.id
LIMIT %(limit)s
"""


def labelled_sample(
    conn: psycopg2.extensions.connection, version: str, limit: int
) -> tuple[int, list[tuple[dict[str, Any], list[str]]]]:
    """(papers `version` has labelled, up to `limit` of them as (record, chosen labels))."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM paper_labelling WHERE model_version = %s", (version,))
        (total,) = cur.fetchone()
        cur.execute(_SAMPLE, {"version": version, "limit": limit})
        rows = cur.fetchall()
    fields = ("paper_id", "doi", "title", "abstract", "venue", "url")
    return total, [(dict(zip(fields, row[:6], strict=True)), list(row[6])) for row in rows]
