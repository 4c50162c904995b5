"""Counts for `petal stats` and dashboards: papers, labelled papers, per label, per model version.

API: `collect_stats(conn) -> Stats`.
"""

from __future__ import annotations

from collections import defaultdict
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
    """Every count from one aggregate pass over paper_labels and a few index scans, none
    per label or per version: the PeTaL page reads this on every view (issue 24 item 10)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT (SELECT count(*) FROM papers),
                      (SELECT count(DISTINCT paper_id) FROM paper_labels WHERE origin = 'curator'),
                      (SELECT count(DISTINCT paper_id) FROM paper_labelling)"""
        )
        papers, curator_labelled, model_labelled = cur.fetchone()
        cur.execute(
            """SELECT label_id, origin, model_version, count(*) FROM paper_labels
               GROUP BY label_id, origin, model_version"""
        )
        by_label: dict[tuple[str, str], int] = defaultdict(int)
        by_version: dict[str, int] = defaultdict(int)
        for label_id, origin, version, count in cur.fetchall():
            by_label[label_id, origin] += count
            if origin == "model":
                by_version[version] += count
        cur.execute("SELECT id, name, level FROM taxonomy_labels ORDER BY position")
        per_label = [
            LabelCount(i, name, level, by_label[i, "curator"], by_label[i, "model"])
            for i, name, level in cur.fetchall()
        ]
        cur.execute(
            """SELECT m.version, m.is_production, coalesce(l.papers, 0), coalesce(r.runs, 0)
               FROM model_versions m
               LEFT JOIN (SELECT model_version, count(*) AS papers FROM paper_labelling
                          GROUP BY model_version) l ON l.model_version = m.version
               LEFT JOIN (SELECT model_version, count(*) AS runs FROM labelling_runs
                          GROUP BY model_version) r ON r.model_version = m.version
               ORDER BY m.created_at, m.version"""
        )
        per_version = [
            VersionCount(version, production, labelled, by_version[version], runs)
            for version, production, labelled, runs in cur.fetchall()
        ]
    curator_labels = sum(n for (_, origin), n in by_label.items() if origin == "curator")
    return Stats(
        papers,
        curator_labelled,
        model_labelled,
        curator_labels,
        sum(by_version.values()),
        per_label=per_label,
        per_version=per_version,
    )
