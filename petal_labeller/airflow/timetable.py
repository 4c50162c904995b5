"""The labelling DAG's schedule: cron data intervals whose catch-up starts at a date the
timetable holds, so the DAG itself needs no `start_date`.

Why not `DAG(start_date=...)`: Airflow creates no task instances for a manual run
whose logical date is before a task's start date, so such a run (`airflow dags
trigger --logical-date`, the REST API, the UI's trigger form) "succeeds" at once
having done nothing (apache/airflow#26865). Backfills are exempt, manual runs are
not. With the start kept here, the scheduler still catches up from it, while a
manual run or a backfill of any day gets its tasks and labels that day's papers.
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
