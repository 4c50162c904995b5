"""The papers waiting for a curator, most uncertain first, read from the uncertainty
stored on each mark (`labels._score_marks`) through its index: the PeTaL page's
"Needs review" in bounded time however many papers wait (issue 24 item 10).

`petal review queue` ranks the same papers the same way in Python
(`review.queue.most_uncertain`), with their neighbours; this reads only the head.
"""

from __future__ import annotations

import psycopg2.extensions

from petal_labeller.store.reviews import Candidate, ReviewCounts

_HEAD = """
SELECT l.paper_id, p.doi, p.title, p.abstract, p.url, l.uncertainty,
       coalesce((SELECT json_object_agg(pl.label_id, pl.score) FROM paper_labels pl
                 WHERE pl.paper_id = l.paper_id AND pl.origin = 'model'
                   AND pl.model_version = coalesce(l.labels_version, l.model_version)), '{}')
FROM paper_labelling l JOIN papers p ON p.id = l.paper_id
WHERE l.model_version = %(version)s
  AND NOT EXISTS (SELECT 1 FROM paper_labels c
                  WHERE c.paper_id = l.paper_id AND c.origin = 'curator')
  AND NOT EXISTS (SELECT 1 FROM paper_reviews r WHERE r.paper_id = l.paper_id)
  AND p.irrelevant_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM review_tasks t WHERE t.paper_id = l.paper_id AND t.status = 'sent')
ORDER BY l.uncertainty DESC NULLS LAST, l.paper_id
LIMIT %(limit)s"""


def most_uncertain_head(
    conn: psycopg2.extensions.connection, model_version: str, limit: int
) -> list[tuple[float, Candidate]]:
    """(uncertainty, candidate) for the `limit` papers waiting for review that
    `model_version` is least sure of; ties: lower paper id first."""
    with conn.cursor() as cur:
        cur.execute(_HEAD, {"version": model_version, "limit": limit})
        rows = cur.fetchall()
    return [
        (
            float(uncertainty) if uncertainty is not None else 1.0,
            Candidate(paper_id, doi, title, abstract, url, dict(scores)),
        )
        for paper_id, doi, title, abstract, url, uncertainty, scores in rows
    ]


def review_counts(
    conn: psycopg2.extensions.connection, model_version: str | None, labelled: int
) -> ReviewCounts:
    """`store.reviews.review_counts` for a version that labelled `labelled` papers, counted
    from the small side: those papers less the ones curated or reviewed, found by index
    from the curated and reviewed papers, instead of two anti-joins over every mark."""
    with conn.cursor() as cur:
        # Each by a partial index (0014): open tasks, papers marked not relevant.
        cur.execute(
            """SELECT (SELECT count(*) FROM paper_reviews),
                      (SELECT count(*) FROM review_tasks WHERE status = 'sent'),
                      (SELECT count(*) FROM papers WHERE irrelevant_at IS NOT NULL)"""
        )
        reviewed, with_curators, irrelevant = cur.fetchone()
        if model_version is None:
            return ReviewCounts(reviewed, 0, with_curators, irrelevant)
        cur.execute(
            """SELECT count(*) FROM (
                   SELECT paper_id FROM paper_labels WHERE origin = 'curator'
                   UNION SELECT paper_id FROM paper_reviews
                   UNION SELECT id FROM papers WHERE irrelevant_at IS NOT NULL) decided
               JOIN paper_labelling l ON l.paper_id = decided.paper_id
                                     AND l.model_version = %s""",
            (model_version,),
        )
        return ReviewCounts(reviewed, labelled - cur.fetchone()[0], with_curators, irrelevant)
