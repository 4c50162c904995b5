"""The labelling DAG's schedule: cron data intervals whose catch-up starts at a date the
timetable holds, so the DAG itself needs no `start_date`.

Why not `DAG(start_date=...)`: Airflow creates no task instances for a manual run
whose logical date is before a task's start date, so such a run (`airflow dags
trigger --logical-date`, the REST API, the UI's trigger form) "succeeds" at once
having done nothing (apache/airflow#26865). Backfills are exempt, manual runs are
not. With the start kept here, the scheduler still catches up from it, while a
manual run or a backfill of any day gets its tasks and labels that day's papers.

A logical date is one slot per DAG, which a scheduled run, a manual run and a backfill
all compete for (a backfill with `--reprocess-behavior` re-runs whatever run holds the
slot, keeping that run's stored data interval). So every run dated D labels the same
window, the schedule's interval that holds D (`interval_of`), and a manual run is given
that interval too: Airflow's default gives a manual run dated D the interval *before*
D, so a later backfill that re-ran it for day D labelled the day before and left D's
papers unlabelled, all green (issue 23).

Registered through the PeTaL plugin, as Airflow requires of custom timetables.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable


class CatchupFromTimetable(CronDataIntervalTimetable):
    """`CronDataIntervalTimetable` whose scheduled runs begin at `start` (catch-up from there).

    The start applies only where Airflow has no earliest date of its own (the
    scheduler, for a DAG without start_date); a backfill's `--from-date` wins.
    """

    def __init__(self, cron: str, timezone: Any, start: pendulum.DateTime) -> None:
        super().__init__(cron, timezone)
        self.start = pendulum.instance(start)
        self.description = f"{self.description}, from {self.start:%Y-%m-%d}"

    @property
    def summary(self) -> str:
        return f"{self._expression} from {self.start:%Y-%m-%d}"

    def interval_of(self, logical_date: Any) -> DataInterval:
        """The schedule's interval that holds `logical_date`: `[D, D+1)` for a day D.

        What every run dated `logical_date` labels, whatever its kind or stored interval.
        """
        start = self._align_to_prev(pendulum.instance(logical_date))
        return DataInterval(start=start, end=self._get_next(start))

    def infer_manual_data_interval(self, *, run_after: pendulum.DateTime) -> DataInterval:
        """A manual run dated D gets the interval a scheduled run dated D has (not the one
        before it), so whichever run holds the slot labels the same papers."""
        return self.interval_of(run_after)

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        if restriction.earliest is None:
            restriction = TimeRestriction(self.start, restriction.latest, restriction.catchup)
        return super().next_dagrun_info(
            last_automated_data_interval=last_automated_data_interval, restriction=restriction
        )

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "start": self.start.isoformat()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> CatchupFromTimetable:
        from airflow._shared.timezones.timezone import parse_timezone  # as the parent does

        start = pendulum.parse(data["start"], tz="UTC")
        return cls(data["expression"], parse_timezone(data["timezone"]), start)
