"""Send a batch of review papers to a backend and remember each task; read the answers back.

`record_sent` writes, in one transaction, what `petal review apply` needs to accept
a decision (the queue's record: model version and labels shown) and the open task
per paper (`store.review_tasks`), so a paper is never out twice. The backends:

- `files`: the queue file itself (`review.queue.write_queue`), answered by `petal review apply`
  or read back here as decision lines;
- `label_studio`: tasks in the project (`review.label_studio`), ids from Label Studio;
- `ground_truth`: one labelling job; the task id is the paper id (the DAG uploads
  the files and calls CreateLabelingJob through the provider's hook).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions

from petal_labeller.rejects import RejectSink
from petal_labeller.review import ground_truth, label_studio
from petal_labeller.review.answers import CollectReport, apply_answers
from petal_labeller.review.queue import write_queue
from petal_labeller.store import review_tasks, reviews
from petal_labeller.store.unit import write_unit
from petal_labeller.taxonomy import Taxonomy


def record_sent(
    conn: psycopg2.extensions.connection,
    backend: str,
    batch: str,
    records: Sequence[dict[str, Any]],
    external_ids: Sequence[str],
) -> int:
    """Remember the batch's tasks and what each showed; one transaction, committed."""
    with write_unit(conn, True):
        reviews.record_queue(
            conn,
            (
                (r["paper_id"], r["model_version"], [m["label"] for m in r["model_labels"]])
                for r in records
            ),
            commit=False,
        )
        return review_tasks.record_tasks(
            conn,
            backend,
            batch,
            (
                (ext, r["paper_id"], r["model_version"])
                for ext, r in zip(external_ids, records, strict=True)
            ),
            commit=False,
        )


def publish_files(conn, records: Sequence[dict], path: Path, fmt: str = "jsonl") -> str:
    """The batch as a queue file at `path`; the batch is named by the file's name."""
    write_queue(list(records), path, fmt)
    record_sent(conn, "files", path.name, records, [str(r["paper_id"]) for r in records])
    return path.name


def publish_label_studio(
    conn,
    client: label_studio.LabelStudio,
    project_title: str,
    records: Sequence[dict],
    taxonomy: Taxonomy,
) -> tuple[int, list[int]]:
    """The batch as tasks of the project named `project_title` (created once); (project, ids).
    Tasks imported but not recorded (the store refused) are deleted again."""
    project = client.project(project_title, label_studio.label_config(taxonomy))
    ids = client.import_tasks(project, [label_studio.task(r, taxonomy) for r in records])
    try:
        record_sent(conn, "label_studio", str(project), records, [str(i) for i in ids])
    except Exception:
        client.delete_tasks(ids)
        raise
    return project, ids


def collect_label_studio(
    conn,
    client: label_studio.LabelStudio,
    project: int,
    taxonomy: Taxonomy,
    now: datetime,
    rejects: RejectSink | None = None,
) -> CollectReport:
    """Apply the answers to the project's open tasks (`review.answers`)."""
    batch = str(project)
    waiting = review_tasks.open_tasks(conn, "label_studio", batch)
    if not waiting:
        return CollectReport(rejects=rejects if rejects is not None else RejectSink(None))
    exported = client.export(project, sorted(int(i) for i in waiting))
    answers = label_studio.read_answers(exported, taxonomy, now, client.users())
    return apply_answers(conn, "label_studio", batch, answers, taxonomy, rejects=rejects)


def collect_ground_truth(
    conn,
    job: str,
    output_manifest,
    taxonomy: Taxonomy,
    now: datetime,
    rejects: RejectSink | None = None,
) -> CollectReport:
    """Apply the answers in a labelling job's output manifest (a binary file object)."""
    answers = ground_truth.read_answers(output_manifest, taxonomy, now)
    return apply_answers(conn, "ground_truth", job, answers, taxonomy, rejects=rejects)


def answers_file(queue_file: Path) -> Path | None:
    """The curators' filled-in copy of a queue file, `<name>.answers.jsonl` or `.csv`."""
    for suffix in (".jsonl", ".csv"):
        path = queue_file.with_name(f"{queue_file.stem}.answers{suffix}")
        if path.is_file():
            return path
    return None


def collect_files(
    conn, batch: str, path: Path, taxonomy: Taxonomy, rejects: RejectSink | None = None
) -> CollectReport:
    """Apply a filled-in queue file as `petal review apply` does and close the tasks it
    decided, in one transaction. The file's lines are decision lines (review.decisions)."""
    from petal_labeller.review.decisions import apply_decisions, read_decisions

    sink = rejects if rejects is not None else RejectSink(None)
    report = CollectReport(rejects=sink)
    read = read_decisions(conn, path, taxonomy, rejects=sink)
    waiting = review_tasks.open_tasks(conn, "files", batch)
    with write_unit(conn, True):
        report.applied = apply_decisions(conn, read, f"files:{batch}", override=False, commit=False)
        refused = {r.paper_id for r in report.applied.refused}
        closing = [
            (str(d.paper_id), "answered", d.reviewer, d.reviewed_at)
            for _, d in read.decisions
            if d.paper_id not in refused and str(d.paper_id) in waiting
        ]
        review_tasks.close_tasks(conn, "files", batch, closing, commit=False)
    report.answered = len(closing)
    return report


def label_studio_waiting(
    client: label_studio.LabelStudio, project: int, task_ids: Sequence[int]
) -> int:
    """How many of the tasks have no answer yet in Label Studio (a cancelled one is none)."""
    exported = client.export(project, list(task_ids)) if task_ids else []
    answered = {
        t.get("id")
        for t in exported
        if isinstance(t, dict)
        and any(
            isinstance(a, dict) and a.get("was_cancelled") is not True
            for a in t.get("annotations") or []
        )
    }
    return len(set(task_ids) - answered)
