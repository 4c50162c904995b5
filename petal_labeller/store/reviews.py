"""Curator reviews of model-labelled papers: what is waiting, what was decided.

API:
- `review_candidates(conn, model_version) -> Iterator[Candidate]`: papers that
  `model_version` labelled, that have no curator label and no review, are not
  out with curators (an open `review_tasks` row, 0014) and were not called not
  biomimicry relevant, with that version's label scores; streamed through a
  server-side cursor.
- `curated_papers(conn, limit) -> list[dict]`: the newest curator-labelled papers
  (paper_id, doi, title, abstract, labels), context for the queue.
- `papers_reviewed_since(conn, since) -> int`: what a retrain on curated papers counts.
- `paper_facts(conn, paper_ids, model_versions) -> dict[int, PaperFacts]`: what
  validating a decision needs to know about each paper.
- `record_queue(conn, entries, *, commit=True) -> int`: the papers `petal review
  queue` sent to curators, with the model version and the labels it showed;
  `queued_labels(conn, paper_ids)` reads them back.
- `apply_reviews(conn, decisions, source, *, override=False, commit=True) -> ApplyReport`:
  one transaction, each paper's row locked first, so concurrent applies are
  serialized per paper and labels and review rows always agree. A decision for a
  paper not queued with its model version is refused, and so is one whose `shown`
  labels are no longer that version's labels for the paper; one that would replace
  another reviewer's decision, or curator labels no review set (an import), is
  refused naming them unless `override`. Otherwise its labels replace the
  paper's curator labels (labels kept keep their who and when) and its
  `paper_reviews` row is written, with the model labels shown (`shown`, 0013); a
  decision identical to the stored one changes nothing, so applying a file twice
  is a no-op. Model labels are never touched.
- `review_counts(conn, model_version) -> ReviewCounts` and
  `reviewed_identities(conn) -> set[tuple[str | None, str]]` ((doi, title) pairs).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg2.extensions
from psycopg2.extras import execute_values

from petal_labeller.store.unit import StoreError, one_line, write_unit

#: Rows fetched per round trip when streaming candidates.
BATCH_SIZE = 1000


@dataclass(frozen=True)
class Candidate:
    paper_id: int
    doi: str | None
    title: str
    abstract: str | None
    url: str | None
    scores: dict[str, float]


@dataclass(frozen=True)
class PaperFacts:
    """A paper as a decision is checked against it: its DOI and each version's labels."""

    doi: str | None
    model_labels: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewDecision:
    """A validated decision: `labels` is the paper's new curator label set (closed upwards)."""

    paper_id: int
    reviewer: str
    reviewed_at: datetime
    model_version: str | None
    accepted: bool
    removed: tuple[str, ...]
    added: tuple[str, ...]
    labels: tuple[str, ...]
    #: The model labels the curator saw; when given, the store refuses the decision
    #: unless they are still `model_version`'s labels for the paper (checked under its lock).
    shown: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Refusal:
    """A decision the store refused: which paper, which field, and why (for the rejects file)."""

    paper_id: int
    field: str
    reason: str


@dataclass(frozen=True)
class ApplyReport:
    applied: int  # papers whose review or labels changed
    unchanged: int  # decisions already stored exactly so
    labels_added: int
    labels_removed: int
    refused: tuple[Refusal, ...] = ()


@dataclass(frozen=True)
class _Stored:
    """A paper's review row as stored."""

    reviewer: str
    reviewed_at: datetime
    model_version: str | None
    accepted: bool
    removed: tuple[str, ...]
    added: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ReviewCounts:
    reviewed: int
    waiting: int
    #: Papers out with curators (an open review task), and papers called not relevant.
    with_curators: int = 0
    irrelevant: int = 0


_CANDIDATES = """
    SELECT p.id, p.doi, p.title, p.abstract, p.url,
           coalesce(json_object_agg(pl.label_id, pl.score)
                    FILTER (WHERE pl.label_id IS NOT NULL), '{}')
    FROM paper_labelling l
    JOIN papers p ON p.id = l.paper_id
    LEFT JOIN paper_labels pl ON pl.paper_id = l.paper_id AND pl.origin = 'model'
                             AND pl.model_version = coalesce(l.labels_version, l.model_version)
    WHERE l.model_version = %(version)s
      AND NOT EXISTS (SELECT 1 FROM paper_labels c
                      WHERE c.paper_id = l.paper_id AND c.origin = 'curator')
      AND NOT EXISTS (SELECT 1 FROM paper_reviews r WHERE r.paper_id = l.paper_id)
      AND p.irrelevant_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM review_tasks t
                      WHERE t.paper_id = l.paper_id AND t.status = 'sent')
    GROUP BY p.id
    ORDER BY p.id"""


def review_candidates(
    conn: psycopg2.extensions.connection, model_version: str
) -> Iterator[Candidate]:
    """Stream the papers waiting for review; consume before committing on `conn`."""
    cursor = conn.cursor(name=f"review_{uuid.uuid4().hex[:12]}")
    cursor.itersize = BATCH_SIZE
    try:
        cursor.execute(_CANDIDATES, {"version": model_version})
        for paper_id, doi, title, abstract, url, scores in cursor:
            yield Candidate(paper_id, doi, title, abstract, url, dict(scores))
    finally:
        if not cursor.closed and not conn.closed:
            cursor.close()


def papers_reviewed_since(conn: psycopg2.extensions.connection, since: datetime | None) -> int:
    """Papers whose review was applied after `since` (every reviewed paper when None):
    the curated papers a model registered at `since` has not learned from."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM paper_reviews WHERE %(since)s::timestamptz IS NULL "
            "OR applied_at > %(since)s",
            {"since": since},
        )
        return cur.fetchone()[0]


def curated_papers(conn: psycopg2.extensions.connection, limit: int) -> list[dict]:
    """The `limit` newest curator-labelled papers with their label ids (taxonomy order)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT p.id, p.doi, p.title, p.abstract,
                      array_agg(pl.label_id ORDER BY t.position)
               FROM papers p
               JOIN paper_labels pl ON pl.paper_id = p.id AND pl.origin = 'curator'
               JOIN taxonomy_labels t ON t.id = pl.label_id
               GROUP BY p.id ORDER BY p.id DESC LIMIT %s""",
            (limit,),
        )
        return [
            {"paper_id": i, "doi": doi, "title": title, "abstract": abstract, "labels": labels}
            for i, doi, title, abstract, labels in cur.fetchall()
        ]


def paper_facts(
    conn: psycopg2.extensions.connection, paper_ids: Sequence[int], versions: Sequence[str]
) -> dict[int, PaperFacts]:
    """The DOI of each existing paper and its model labels under each of `versions`."""
    facts: dict[int, PaperFacts] = {}
    with conn.cursor() as cur:
        cur.execute("SELECT id, doi FROM papers WHERE id = ANY(%s)", (list(paper_ids),))
        for paper_id, doi in cur.fetchall():
            facts[paper_id] = PaperFacts(doi)
        cur.execute(
            """SELECT l.paper_id, l.model_version,
                      coalesce(array_agg(pl.label_id) FILTER (WHERE pl.label_id IS NOT NULL), '{}')
               FROM paper_labelling l
               LEFT JOIN paper_labels pl
                    ON pl.paper_id = l.paper_id AND pl.origin = 'model'
                   AND pl.model_version = coalesce(l.labels_version, l.model_version)
               WHERE l.paper_id = ANY(%s) AND l.model_version = ANY(%s)
               GROUP BY l.paper_id, l.model_version""",
            (list(paper_ids), list(versions)),
        )
        for paper_id, version, labels in cur.fetchall():
            facts[paper_id].model_labels[version] = list(labels)
    return facts


def record_queue(
    conn: psycopg2.extensions.connection,
    entries: Iterable[tuple[int, str, Sequence[str]]],
    *,
    commit: bool = True,
) -> int:
    """Remember (paper_id, model_version, labels shown) for each queued paper; the count."""
    rows = [(paper_id, version, list(labels)) for paper_id, version, labels in entries]
    with write_unit(conn, commit), conn.cursor() as cur:
        execute_values(
            cur,
            """INSERT INTO review_queue (paper_id, model_version, model_labels) VALUES %s
               ON CONFLICT (paper_id, model_version) DO UPDATE
               SET model_labels = EXCLUDED.model_labels, queued_at = now()""",
            rows,
        )
    return len(rows)


def queued_labels(
    conn: psycopg2.extensions.connection, paper_ids: Sequence[int]
) -> dict[int, dict[str, list[str]]]:
    """paper_id -> {model version: the labels `petal review queue` showed} (empty: unknown)."""
    queued: dict[int, dict[str, list[str]]] = {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT paper_id, model_version, model_labels FROM review_queue "
            "WHERE paper_id = ANY(%s)",
            (list(paper_ids),),
        )
        for paper_id, version, labels in cur.fetchall():
            queued.setdefault(paper_id, {})[version] = list(labels)
    return queued


def _lock_papers(cur, paper_ids: list[int]) -> None:
    """Row-lock the papers, in id order so two applies never deadlock.

    NO KEY UPDATE: it serializes applies (and imports updating the paper) on the same
    paper, but not the labelling writers, whose foreign keys only take KEY SHARE.
    """
    cur.execute(
        "SELECT id FROM papers WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
        (paper_ids,),
    )


def _queued(cur, paper_ids: list[int]) -> set[tuple[int, str]]:
    cur.execute(
        "SELECT paper_id, model_version FROM review_queue WHERE paper_id = ANY(%s)",
        (paper_ids,),
    )
    return set(cur.fetchall())


def _stored(cur, paper_ids: list[int]) -> dict[int, _Stored]:
    cur.execute(
        """SELECT paper_id, reviewer, reviewed_at, model_version, accepted, removed, added, labels
           FROM paper_reviews WHERE paper_id = ANY(%s)""",
        (paper_ids,),
    )
    return {
        row[0]: _Stored(*row[1:5], tuple(row[5]), tuple(row[6]), tuple(row[7]))
        for row in cur.fetchall()
    }


def _curated(cur, paper_ids: list[int]) -> dict[int, set[str]]:
    cur.execute(
        """SELECT paper_id, label_id FROM paper_labels
           WHERE paper_id = ANY(%s) AND origin = 'curator'""",
        (paper_ids,),
    )
    curated: dict[int, set[str]] = {}
    for paper_id, label in cur.fetchall():
        curated.setdefault(paper_id, set()).add(label)
    return curated


def _same(decision: ReviewDecision, stored: _Stored | None) -> bool:
    if stored is None:
        return False
    return (
        stored.reviewer, stored.model_version, stored.accepted,
        stored.removed, stored.added, stored.labels,
    ) == (
        decision.reviewer, decision.model_version, decision.accepted,
        decision.removed, decision.added, decision.labels,
    )  # fmt: skip


def _conflict(decision: ReviewDecision, stored: _Stored | None, curated: set[str]) -> str | None:
    """Why the decision would replace another curator's labels; None when it would not."""
    pid = decision.paper_id
    if stored is None:
        if curated:
            return f"paper {pid} already has curator labels {sorted(curated)} from an import"
        return None
    when = stored.reviewed_at.date().isoformat()
    if set(stored.labels) != curated:
        return (
            f"paper {pid}'s curator labels {sorted(curated)} were changed after "
            f"{stored.reviewer}'s review of {when}"
        )
    if stored.reviewer != decision.reviewer:
        return (
            f"paper {pid} was decided by {stored.reviewer} on {when} (labels {list(stored.labels)})"
        )
    return None


def _refusal(
    decision: ReviewDecision,
    queued: set[tuple[int, str]],
    stored: _Stored | None,
    curated: set[str],
    override: bool,
    current: dict[int, list[str]],
) -> Refusal | None:
    """Why the store refuses the decision (checked under the paper's lock); None: apply it."""
    pid, version = decision.paper_id, decision.model_version
    if version is None or (pid, version) not in queued:
        reason = f"paper {pid} was never queued for review with model {version!r}"
        return Refusal(pid, "paper_id", reason + " (petal review queue)")
    now = current.get(pid)
    if decision.shown is not None and set(now or ()) != set(decision.shown):
        reason = (
            f"paper {pid}'s labels from model {version!r} are now {sorted(now or ())}, "
            f"not the {sorted(decision.shown)} shown: queue it again"
        )
        return Refusal(pid, "model_labels", reason)
    conflict = _conflict(decision, stored, curated)
    if conflict and not override:
        return Refusal(pid, "reviewer", f"{conflict}; --override replaces them")
    return None


def _write_labels(cur, decision: ReviewDecision) -> tuple[int, int]:
    """Make the paper's curator labels exactly `decision.labels`; (added, removed)."""
    cur.execute(
        """DELETE FROM paper_labels WHERE paper_id = %s AND origin = 'curator'
           AND NOT label_id = ANY(%s)""",
        (decision.paper_id, list(decision.labels)),
    )
    removed = cur.rowcount
    execute_values(
        cur,
        """INSERT INTO paper_labels (paper_id, label_id, origin, curated_by, labelled_at)
           VALUES %s ON CONFLICT (paper_id, label_id) WHERE origin = 'curator' DO NOTHING""",
        [
            (decision.paper_id, label, decision.reviewer, decision.reviewed_at)
            for label in decision.labels
        ],
        template="(%s, %s, 'curator', %s, %s)",
        page_size=max(1, len(decision.labels)),
    )
    return cur.rowcount, removed


def _write_review(cur, decision: ReviewDecision, source: str) -> None:
    cur.execute(
        """INSERT INTO paper_reviews (paper_id, reviewer, reviewed_at, model_version,
               accepted, removed, added, labels, source, shown)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (paper_id) DO UPDATE SET reviewer = EXCLUDED.reviewer,
               reviewed_at = EXCLUDED.reviewed_at,
               model_version = EXCLUDED.model_version,
               accepted = EXCLUDED.accepted, removed = EXCLUDED.removed,
               added = EXCLUDED.added, labels = EXCLUDED.labels,
               source = EXCLUDED.source, shown = EXCLUDED.shown, applied_at = now()""",
        (
            decision.paper_id, decision.reviewer, decision.reviewed_at,
            decision.model_version, decision.accepted, list(decision.removed),
            list(decision.added), list(decision.labels), source,
            None if decision.shown is None else list(decision.shown),
        ),
    )  # fmt: skip


def _current_labels(conn, decisions: list[ReviewDecision]) -> dict[int, list[str]]:
    """paper_id -> its model labels now, under the version each decision names."""
    versions = sorted({d.model_version for d in decisions if d.model_version})
    facts = paper_facts(conn, [d.paper_id for d in decisions], versions)
    return {
        d.paper_id: facts[d.paper_id].model_labels.get(d.model_version, [])
        for d in decisions
        if d.paper_id in facts and d.model_version
    }


def apply_reviews(
    conn: psycopg2.extensions.connection,
    decisions: Iterable[ReviewDecision],
    source: str,
    *,
    override: bool = False,
    commit: bool = True,
) -> ApplyReport:
    """Write every acceptable decision in one transaction (see the module doc)."""
    decisions = list(decisions)
    ids = sorted({d.paper_id for d in decisions})
    applied = unchanged = added = removed = 0
    refused: list[Refusal] = []
    try:
        with write_unit(conn, commit), conn.cursor() as cur:
            _lock_papers(cur, ids)  # everything below is read under the lock
            queued, stored, curated = _queued(cur, ids), _stored(cur, ids), _curated(cur, ids)
            current = _current_labels(conn, decisions)
            for decision in decisions:
                pid = decision.paper_id
                before, labels = stored.get(pid), curated.get(pid, set())
                if _same(decision, before) and labels == set(decision.labels):
                    unchanged += 1
                    continue
                refusal = _refusal(decision, queued, before, labels, override, current)
                if refusal is not None:
                    refused.append(refusal)
                    continue
                plus, minus = _write_labels(cur, decision)
                added, removed = added + plus, removed + minus
                _write_review(cur, decision, source)
                applied += 1
    except (psycopg2.IntegrityError, psycopg2.DataError) as exc:
        raise StoreError(f"reviews not applied: {one_line(exc)}") from exc
    return ApplyReport(applied, unchanged, added, removed, tuple(refused))


def review_counts(conn: psycopg2.extensions.connection, model_version: str | None) -> ReviewCounts:
    """Papers reviewed so far, and papers `model_version` labelled that wait for a review."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM paper_reviews")
        reviewed = cur.fetchone()[0]
        waiting = 0
        if model_version is not None:
            cur.execute(
                """SELECT count(*) FROM paper_labelling l
                   WHERE l.model_version = %s
                     AND NOT EXISTS (SELECT 1 FROM paper_labels c
                                     WHERE c.paper_id = l.paper_id AND c.origin = 'curator')
                     AND NOT EXISTS (SELECT 1 FROM paper_reviews r
                                     WHERE r.paper_id = l.paper_id)
                     AND NOT EXISTS (SELECT 1 FROM papers p
                                     WHERE p.id = l.paper_id AND p.irrelevant_at IS NOT NULL)""",
                (model_version,),
            )
            waiting = cur.fetchone()[0]
    return ReviewCounts(reviewed, waiting)


def reviewed_identities(conn: psycopg2.extensions.connection) -> set[tuple[str | None, str]]:
    """(doi, title) of every reviewed paper, as `export_papers` yields them."""
    with conn.cursor() as cur:
        cur.execute("SELECT p.doi, p.title FROM paper_reviews r JOIN papers p ON p.id = r.paper_id")
        return set(cur.fetchall())
