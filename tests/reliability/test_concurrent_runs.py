"""Two runs of the same interval at once (a manual trigger during a backfill): no duplicate
or lost labels, no deadlock, whichever order their steps interleave in."""

from __future__ import annotations

import threading
from contextlib import closing

import pytest

from petal_labeller.pipeline.stage import stage_pending
from petal_labeller.pipeline.validate import CheckedOutput
from petal_labeller.pipeline.write import RunRecord, write_labels
from petal_labeller.store.connection import connect
from petal_labeller.store.models import register_model_version
from tests.reliability.conftest import (
    SINCE,
    UNTIL,
    VERSION,
    Worker,
    query,
    seed_papers,
    synthetic_output,
)

ROUNDS = 4


def _run(url, run_id, version, limit, staged_barrier, tmp_path, everything: CheckedOutput):
    """One labelling run: stage the window's pending papers, wait for the other run, write."""
    with closing(connect(url)) as conn:
        batch = stage_pending(
            conn, tmp_path / f"{run_id}.jsonl", version, SINCE, UNTIL, limit=limit
        )
    staged_barrier.wait(30)  # both runs have selected the same papers before either writes
    mine = set(batch.paper_ids)
    checked = CheckedOutput(
        rows=[row for row in everything.rows if row[0] in mine], labelled=sorted(mine)
    )
    return write_labels(
        RunRecord(run_id, version, database_url=url), checked, papers_selected=batch.count
    )


def _labels(url: str, version: str) -> list[tuple]:
    """The labels `version` gives each paper it labelled: its own rows, or those it kept
    from another version because they were unchanged (issue 26 item 3)."""
    return query(
        url,
        "SELECT l.paper_id, pl.label_id, pl.score FROM paper_labelling l "
        "JOIN paper_labels pl ON pl.paper_id = l.paper_id AND pl.origin = 'model' "
        " AND pl.model_version = coalesce(l.labels_version, l.model_version) "
        "WHERE l.model_version = %s ORDER BY l.paper_id, pl.label_id",
        (version,),
    )


@pytest.mark.slow
def test_concurrent_runs_of_one_interval_label_every_paper_once(seeded_url, tmp_path):
    url = seeded_url
    with closing(connect(url)) as conn:
        register_model_version(conn, "v-other", base_model="test", artefact_uri="/nonexistent")
    total = 0
    for round_number in range(ROUNDS):
        # New papers arrive between rounds; each round's runs race on the pending ones.
        seed_papers(url, 600, start=round_number * 600)
        total += 600
        everything = synthetic_output(url)
        # Round 0/1: identical runs; 2: one run capped (max_papers), the other takes all;
        # 3: three runs, one of them by another model version (a relabel racing a daily run).
        plans = [
            [("a", VERSION, None), ("b", VERSION, None)],
            [("a", VERSION, None), ("b", VERSION, None)],
            [("a", VERSION, 250), ("b", VERSION, None)],
            [("a", VERSION, None), ("b", VERSION, 100), ("c", "v-other", None)],
        ][round_number]
        barrier = threading.Barrier(len(plans))
        workers = [
            Worker(_run, url, f"r{round_number}-{name}", version, limit, barrier, tmp_path,
                   everything)
            for name, version, limit in plans
        ]  # fmt: skip
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
            assert not worker.is_alive(), "a run hung (deadlock?)"
            assert worker.error is None, repr(worker.error)

        expected = sorted((p, label, pytest.approx(s, abs=1e-6)) for p, label, s in everything.rows)
        assert _labels(url, VERSION) == expected, f"round {round_number}: lost or extra labels"
        assert query(
            url,
            "SELECT count(*), count(DISTINCT paper_id) FROM paper_labelling "
            "WHERE model_version = %s",
            (VERSION,),
        ) == [(total, total)]
        duplicates = query(
            url,
            "SELECT paper_id, label_id, model_version FROM paper_labels "
            "GROUP BY 1, 2, 3 HAVING count(*) > 1",
        )
        assert duplicates == []
        statuses = query(
            url, "SELECT DISTINCT status FROM labelling_runs WHERE run_id LIKE %s",
            (f"r{round_number}-%",),
        )  # fmt: skip
        assert statuses == [("success",)]

    # The relabel by the other version labelled every paper in the window: with the same
    # output, as rows of its own or as the racing version's rows it found unchanged.
    assert _labels(url, "v-other") == expected
