"""Curators' answers from a review backend, checked and applied like a decision file.

Each backend's reader (`label_studio.read_answers`, `ground_truth.read_answers`)
turns its own output into `Answer`s, or into `AnswerError`s for answers that
cannot be read (one per answer, naming its task and the field). An answer is:

- `labels`: the labels the curator ticked in the tree; with the labels the task
  showed (the model's, recorded as the queue's) they become a decision line's
  `accept`/`remove`/`add` and go through `decisions.resolve` and
  `store.reviews.apply_reviews`: the same checks as `petal review apply` (labels
  in the taxonomy, closed upwards, who and when, never another curator's labels);
- `irrelevant`: "not biomimicry relevant": the paper is marked, never labelled
  or queued again;
- `not_sure`: the task closes and the paper returns to the queue.

`apply_answers` writes everything in one transaction: the decisions, the marks,
and the tasks closed. Only open tasks take answers, so collecting twice adds nothing;
a task whose answer was rejected stays open (the curator can correct it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import psycopg2.extensions

from petal_labeller.instants import InstantError, parse_instant
from petal_labeller.papers import Rejection
from petal_labeller.rejects import RejectSink
from petal_labeller.review import decisions
from petal_labeller.review.decisions import DecisionError, Draft, resolve
from petal_labeller.store import review_tasks, reviews
from petal_labeller.store.unit import write_unit
from petal_labeller.taxonomy import Taxonomy

VERDICTS = ("labels", "irrelevant", "not_sure")
#: Most answers one collect reads (a batch is at most `queue.MAX_QUEUE` papers, each
#: answered by a few curators).
MAX_ANSWERS = 50_000
MAX_ID = 200
#: Field names `resolve` reports, as a curator's answer names them.
_FIELDS = {"remove": "labels", "add": "labels", "accept": "labels"}


class AnswerError(ValueError):
    """One answer is unusable: `task` and `field` name where, for the rejects file."""

    def __init__(self, task: str | None, field: str, message: str, shown: str = ""):
        where = f"task {task}" if task else "an answer"
        super().__init__(f"{where}: field {field!r}: {message}")
        self.task, self.field, self.shown = task, field, shown


@dataclass(frozen=True)
class Answer:
    task: str  # the backend's task id, as recorded when the task was sent
    verdict: str
    labels: tuple[str, ...]
    reviewer: str
    answered_at: datetime
    paper_id: int | None = None  # what the answer says its paper is (checked against the task)
    shown: str = ""  # the answer as read, bounded, for the rejects file


@dataclass
class CollectReport:
    answered: int = 0  # decisions applied or already so
    irrelevant: int = 0
    not_sure: int = 0
    already: int = 0  # answers for tasks closed by an earlier collect
    applied: reviews.ApplyReport | None = None
    rejects: RejectSink = field(default_factory=lambda: RejectSink(None))

    @property
    def curated(self) -> int:
        """Papers whose curator labels this collect set (the Asset's count)."""
        return self.applied.applied if self.applied else 0


def shown_text(value) -> str:
    """An answer as the rejects file shows it: JSON, bounded."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return decisions._safe(text[: decisions.MAX_SHOWN])


def text_field(task: str | None, name: str, value, limit: int = decisions.MAX_REVIEWER) -> str:
    """A printable, bounded string field of an answer (the decision file's rule)."""
    try:
        text = decisions._text({name: value}, name, limit)
    except DecisionError as error:
        raise AnswerError(task, name, str(error).split(": ", 1)[1]) from None
    if text is None:
        raise AnswerError(task, name, "is missing")
    return text


def instant_field(task: str | None, name: str, value, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise AnswerError(task, name, f"must be an ISO 8601 string, not {type(value).__name__}")
    try:
        return parse_instant(value, now=now)
    except InstantError as error:
        raise AnswerError(task, name, str(error)) from None


def label_ids(task: str | None, name: str, values, taxonomy: Taxonomy) -> tuple[str, ...]:
    """Label ids from the taxonomy, bounded, each once."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AnswerError(task, name, "must be a list of label ids")
    try:
        return decisions._known(name, values, taxonomy)
    except DecisionError as error:
        raise AnswerError(task, name, str(error).split(": ", 1)[1]) from None


def _reject(sink: RejectSink, index: int, task, paper, fieldname: str, reason: str, shown: str):
    where = f"task {task}" + (f" (paper {paper})" if paper is not None else "")
    text = reason if reason.startswith(f"task {task}") else f"{where}: {reason}"
    sink.add(Rejection(index, fieldname, decisions._safe(text), shown), 0)


def _draft(index: int, answer: Answer, task: review_tasks.OpenTask, shown_labels, taxonomy):
    chosen = set(taxonomy.close_upwards(answer.labels))
    shown = set(shown_labels)
    return Draft(
        line=index,
        paper_id=task.paper_id,
        doi=None,
        doi_field="doi",
        model_version=task.model_version,
        shown=None,  # the labels the queue recorded it sent with the task
        reviewer=answer.reviewer,
        reviewed_at=answer.answered_at,
        remove=tuple(label for label in taxonomy.ids if label in shown - chosen),
        add=tuple(label for label in taxonomy.ids if label in chosen - shown),
        accept=True,
    )


def apply_answers(
    conn: psycopg2.extensions.connection,
    backend: str,
    batch: str,
    answers: Iterable[Answer | AnswerError],
    taxonomy: Taxonomy,
    *,
    rejects: RejectSink | None = None,
) -> CollectReport:
    """Check every answer against its open task and apply them all in one transaction."""
    report = CollectReport(rejects=rejects if rejects is not None else RejectSink(None))
    sink = report.rejects
    open_tasks = review_tasks.open_tasks(conn, backend, batch)
    known = review_tasks.batch_tasks(conn, backend, batch)
    usable: list[tuple[int, Answer, review_tasks.OpenTask]] = []
    seen: dict[int, str] = {}
    for index, item in enumerate(answers, start=1):
        if index > MAX_ANSWERS:
            _reject(sink, index, None, None, "task", f"over {MAX_ANSWERS} answers", "")
            continue
        if isinstance(item, AnswerError):
            paper = known.get(item.task) if item.task else None
            sink.add(Rejection(index, item.field, decisions._safe(_where(item, paper)), item.shown))
            continue
        task = open_tasks.get(item.task)
        if task is None:
            if item.task in known:
                report.already += 1
            else:
                reason = f"no task {item.task!r} was sent in {backend} batch {batch!r}"
                _reject(sink, index, item.task, None, "task", reason, item.shown)
            continue
        if item.paper_id is not None and item.paper_id != task.paper_id:
            reason = f"names paper {item.paper_id}, but the task was sent for paper {task.paper_id}"
            _reject(sink, index, item.task, task.paper_id, "paper_id", reason, item.shown)
            continue
        if task.paper_id in seen:
            reason = f"paper {task.paper_id} was answered already by {seen[task.paper_id]}"
            _reject(sink, index, item.task, task.paper_id, "task", reason, item.shown)
            continue
        seen[task.paper_id] = f"answer {index} ({item.reviewer})"
        usable.append((index, item, task))
    _apply(conn, backend, batch, usable, taxonomy, report)
    return report


def _where(error: AnswerError, paper: int | None) -> str:
    text = str(error)
    if paper is not None and error.task:
        text = text.replace(f"task {error.task}:", f"task {error.task} (paper {paper}):", 1)
    return text


def _apply(conn, backend, batch, usable, taxonomy, report: CollectReport) -> None:
    sink = report.rejects
    labelled = [(i, a, t) for i, a, t in usable if a.verdict == "labels"]
    queued = reviews.queued_labels(conn, [t.paper_id for _, _, t in labelled])
    versions = sorted({t.model_version for _, _, t in labelled if t.model_version})
    facts = reviews.paper_facts(conn, [t.paper_id for _, _, t in labelled], versions)
    decided: list[tuple[int, Answer, reviews.ReviewDecision]] = []
    for index, answer, task in labelled:
        sent = queued.get(task.paper_id, {})
        try:
            draft = _draft(index, answer, task, sent.get(task.model_version, ()), taxonomy)
            known = facts.get(task.paper_id)
            # The task names the paper (an id the backend cannot choose): its DOI is the paper's.
            draft = replace(draft, doi=(known.doi or None) if known else None)
            decision = resolve(draft, known, taxonomy, sent)
        except DecisionError as error:
            name = _FIELDS.get(error.field, error.field)
            reason = f"field {name!r}: {str(error).split(': ', 1)[1]}"
            _reject(sink, index, answer.task, task.paper_id, name, reason, answer.shown)
            continue
        decided.append((index, answer, decision))
    closing: list[tuple[str, str, str, datetime]] = []
    with write_unit(conn, True):
        applied = reviews.apply_reviews(
            conn, [d for _, _, d in decided], f"{backend}:{batch}", commit=False
        )
        refused = {r.paper_id: r for r in applied.refused}
        for index, answer, decision in decided:
            refusal = refused.get(decision.paper_id)
            if refusal is not None:
                _reject(
                    sink, index, answer.task, decision.paper_id, refusal.field,
                    refusal.reason.replace("; --override replaces them", ""), answer.shown,
                )  # fmt: skip
                continue
            closing.append((answer.task, "answered", answer.reviewer, answer.answered_at))
            report.answered += 1
        marks = [
            (t.paper_id, a.reviewer, a.answered_at)
            for _, a, t in usable
            if a.verdict == "irrelevant"
        ]
        review_tasks.mark_irrelevant(conn, marks, commit=False)
        for _, answer, _task in usable:
            if answer.verdict in ("irrelevant", "not_sure"):
                closing.append((answer.task, answer.verdict, answer.reviewer, answer.answered_at))
                if answer.verdict == "irrelevant":
                    report.irrelevant += 1
                else:
                    report.not_sure += 1
        review_tasks.close_tasks(conn, backend, batch, closing, commit=False)
    report.applied = applied


def now_utc() -> datetime:
    return datetime.now(UTC)
