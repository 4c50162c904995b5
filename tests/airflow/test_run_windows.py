"""What window a labelling run labels, whatever kind of run holds its logical date
(issue 23 item 1), and when a backfill's re-run must refuse a conf it kept."""

from __future__ import annotations

from dataclasses import dataclass

import pendulum
import pytest
from airflow.sdk.api.datamodels._generated import DagRunType

from petal_labeller.airflow.labelling.flow import (
    INTERVAL,
    data_window,
    kept_conf_problem,
    labelling_run_id,
)
from petal_labeller.airflow.labelling.timetable import CatchupFromTimetable

UTC = pendulum.UTC
TIMETABLE = CatchupFromTimetable("0 0 * * *", timezone="UTC", start=pendulum.datetime(2026, 11, 1))


@dataclass
class _Dag:
    timetable: CatchupFromTimetable


@dataclass
class _DagRun:
    """What a task's context holds (the task SDK's own DagRunType, not core's)."""

    run_id: str
    run_type: DagRunType
    clear_number: int = 0
    dag_id: str = "petal_label_papers"


def _day(day: int, hour: int = 0) -> pendulum.DateTime:
    return pendulum.datetime(2026, 11, day, hour, tz=UTC)


def test_a_manual_run_gets_the_interval_a_scheduled_run_of_its_date_has():
    """Airflow's default gives a manual run dated D the day before D: a backfill that
    re-ran it for day D then labelled the wrong day."""
    manual = TIMETABLE.infer_manual_data_interval(run_after=_day(27))
    assert (manual.start, manual.end) == (_day(27), _day(28))
    assert TIMETABLE.interval_of(_day(27, 15)) == manual  # any time of the day: that day


@pytest.mark.parametrize(
    "stored",
    [(_day(26), _day(27)), (_day(30), pendulum.datetime(2026, 12, 1, tz=UTC)), (None, None)],
    ids=["the-day-before", "from-the-trigger-time", "none"],
)
def test_a_run_with_a_logical_date_labels_its_day_whatever_interval_airflow_stored(stored):
    context = {
        "logical_date": _day(27),
        "data_interval_start": stored[0],
        "data_interval_end": stored[1],
        "dag": _Dag(TIMETABLE),
    }
    assert data_window(INTERVAL, context) == (_day(27), _day(28))


def test_a_run_without_a_logical_date_labels_every_pending_paper():
    assert data_window(INTERVAL, {"logical_date": None, "dag": _Dag(TIMETABLE)}) == (None, None)


def test_a_re_run_has_a_row_of_its_own_and_a_retry_does_not():
    assert labelling_run_id("d", "manual__x") == "d/manual__x"
    assert labelling_run_id("d", "manual__x", 0) == "d/manual__x"
    assert labelling_run_id("d", "manual__x", 2) == "d/manual__x#2"


@pytest.mark.parametrize(
    "params",
    [{"dry_run": True}, {"model_version": "v-old"}, {"max_papers": 10}],
    ids=["dry-run", "other-model", "capped"],
)
def test_a_backfill_re_run_refuses_a_kept_conf_that_labels_partially(params):
    full = {"dry_run": False, "model_version": "", "max_papers": None, **params}
    problem = kept_conf_problem(_DagRun("manual__x", DagRunType.BACKFILL, clear_number=1), full)
    assert problem and "manual__x" in problem and "--dag-run-conf '{}'" in problem


def test_a_first_run_or_a_full_conf_is_run_as_asked():
    dry = {"dry_run": True, "model_version": "", "max_papers": None}
    full = {"dry_run": False, "model_version": "", "max_papers": None}
    backfill, manual = DagRunType.BACKFILL, DagRunType.MANUAL
    assert kept_conf_problem(_DagRun("backfill__x", backfill, clear_number=0), dry) is None
    assert kept_conf_problem(_DagRun("manual__x", manual, clear_number=3), dry) is None
    assert kept_conf_problem(_DagRun("manual__x", backfill, clear_number=1), full) is None
