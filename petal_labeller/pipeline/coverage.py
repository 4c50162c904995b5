"""The gap check: a labelling run succeeds only if its window has no paper left unlabelled.

Green must mean done. Before this check a run could succeed while papers of the day
it stood for kept no label (a backfill re-ran a manual run that held the day's slot
with another interval, issue 23; a `max_papers` cap; papers that arrived late). Now
every paper ingested in a run's window before the run staged has the run's model's
labels, was set aside and reported (quarantined), or the run failed saying how many
it left. Papers ingested after staging belong to the next run of that window.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import closing
from datetime import datetime

from petal_labeller.pipeline.stage import EARLIEST, LATEST
from petal_labeller.pipeline.write import fail_finished_run, note_partial_run


class CoverageError(RuntimeError):
    """A run finished with papers of its window still unlabelled; the same inputs give
    the same result, so a retry of the task would not help (a new run would)."""


def _bound(value: datetime | None, default: datetime) -> datetime:
    return value if value is not None else default


def check_window_labelled(
    run_id: str,
    model_version: str,
    since: datetime | None,
    until: datetime | None,
    staged_at: datetime,
    *,
    selected: int,
    set_aside: Collection[int] = (),
    partial_by_request: bool = False,
    database_url: str | None = None,
) -> int:
    """How many papers ingested in `[since, min(until, staged_at))` are neither labelled
    by `model_version` nor in `set_aside`; any at all raise `CoverageError` (after the
    run's row is marked failed), unless `partial_by_request`: someone at a terminal
    capped this run (`petal label --max-papers`), so the row stays a success and says
    how many are left. A DAG run never passes it: green must mean the day is done.
    """
    from petal_labeller.store.connection import connect
    from petal_labeller.store.papers import count_pending

    end = min(_bound(until, LATEST), staged_at)
    with closing(connect(database_url)) as conn:
        left = count_pending(conn, _bound(since, EARLIEST), end, model_version, set_aside)
    if not left:
        return 0
    window = f"[{since.isoformat() if since else 'start'}, {end.isoformat()})"
    if partial_by_request:
        note = f"stopped at max_papers={selected}: {left} paper(s) in {window} left to label"
        note_partial_run(run_id, note, database_url)
        return left
    message = (
        f"{left} paper(s) ingested in {window} are still unlabelled by model "
        f"{model_version} after this run, which selected {selected} (a max_papers cap, "
        "or papers that arrived while it ran): trigger the run again to label them"
    )
    fail_finished_run(run_id, message, database_url)
    raise CoverageError(message)
