"""Counts for `petal stats` and dashboards: papers, labelled papers, per label, per model version.

API: `collect_stats(conn) -> Stats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg2.extensions


@dataclass(frozen=True)
class LabelCount:
    label_id: str
    name: str
    level: int
    curator: int
    model: int


@dataclass(frozen=True)
class VersionCount:
    version: str
    is_production: bool
    papers_labelled: int
    labels: int
    runs: int


@dataclass(frozen=True)
class Stats:
    papers: int
    curator_labelled: int
    model_labelled: int
    curator_labels: int
    model_labels: int
    per_label: list[LabelCount] = field(default_factory=list)
    per_version: list[VersionCount] = field(default_factory=list)


def collect_stats(conn: psycopg2.extensions.connection) -> Stats:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT (SELECT count(*) FROM papers),
                      (SELECT count(DISTINCT paper_id) FROM paper_labels WHERE origin = 'curator'),
                      (SELECT count(DISTINCT paper_id) FROM paper_labelling),
                      (SELECT count(*) FROM paper_labels WHERE origin = 'curator'),
                      (SELECT count(*) FROM paper_labels WHERE origin = 'model')"""
        )
        totals = cur.fetchone()
        cur.execute(
            """SELECT t.id, t.name, t.level,
                      count(pl.*) FILTER (WHERE pl.origin = 'curator'),
                      count(pl.*) FILTER (WHERE pl.origin = 'model')
               FROM taxonomy_labels t LEFT JOIN paper_labels pl ON pl.label_id = t.id
               GROUP BY t.id ORDER BY t.position"""
        )
        per_label = [LabelCount(*row) for row in cur.fetchall()]
        cur.execute(
            """SELECT m.version, m.is_production,
                      (SELECT count(*) FROM paper_labelling l WHERE l.model_version = m.version),
                      (SELECT count(*) FROM paper_labels pl
                       WHERE pl.origin = 'model' AND pl.model_version = m.version),
                      (SELECT count(*) FROM labelling_runs r WHERE r.model_version = m.version)
               FROM model_versions m ORDER BY m.created_at, m.version"""
        )
        per_version = [VersionCount(*row) for row in cur.fetchall()]
    return Stats(*totals, per_label=per_label, per_version=per_version)
