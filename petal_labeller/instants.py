"""Instants that come from outside (a paper's `ingested_at`, `--ingested-at`, a review's
`reviewed_at`, `--since`/`--until`): one parser and one set of bounds, so no path accepts
year 9999 or 1066, and none passes Python but fails in PostgreSQL.

Python reads offsets up to +-23:59:59.999999; PostgreSQL's timestamptz takes +-15:59:59
in whole seconds (real zones lie within -12:00..+14:00), so one `-23:59` used to abort a
whole apply or import. Python's years (1..9999) lie inside PostgreSQL's (4713 BC..294276),
but an offset can carry a Python instant out of them once read as UTC (0001-01-01+05:00
is 1 BC): every instant is returned in UTC, so what is stored is always readable back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

#: An instant must lie between these (a typo such as year 20026 or 0206 is an error).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)
#: Longer text is no ISO 8601 instant; refused before parsing.
MAX_TEXT = 64
#: PostgreSQL refuses larger offsets ("time zone displacement out of range").
MAX_OFFSET = timedelta(hours=15, minutes=59, seconds=59)
#: Interval bounds stay this far inside Python's years 1..9999, so arithmetic on them
#: (a day's window, an hour's tolerance) never overflows.
_MARGIN = timedelta(days=2)
_LOWEST = datetime.min.replace(tzinfo=UTC) + _MARGIN
_HIGHEST = datetime.max.replace(tzinfo=UTC) - _MARGIN


class InstantError(ValueError):
    """The text is not an ISO 8601 instant between 1900 and now; the message says which."""


def _in_utc(moment: datetime, shown: str, years: str = "the years 1 and 9999 (in UTC)") -> datetime:
    """`moment` (naive = UTC) in UTC; InstantError unless PostgreSQL and Python both hold it."""
    offset = moment.utcoffset()
    if offset is not None and abs(offset) > MAX_OFFSET:
        raise InstantError(f"has a time-zone offset beyond +-15:59, not {shown}")
    if offset is not None and offset.microseconds:
        raise InstantError(f"has a time-zone offset with fractions of a second, not {shown}")
    try:
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        moment = _LOWEST - _MARGIN
    if not _LOWEST <= moment <= _HIGHEST:
        raise InstantError(f"must lie between {years}, not {shown}")
    return moment


def parse_instant(value: str, *, now: datetime | None = None, bounded: bool = True) -> datetime:
    """An ISO 8601 date or date-time (naive = UTC) between 1900 and a day from `now`, in UTC.

    `bounded=False` is for interval bounds (`--until 2030-01-01` is a fine upper bound),
    which are still ISO 8601 text of bounded length, with an offset PostgreSQL stores,
    within Python's years.
    """
    text = value if isinstance(value, str) else repr(value)
    shown = repr(text[:MAX_TEXT]) + ("..." if len(text) > MAX_TEXT else "")
    try:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ValueError
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InstantError(f"must be an ISO 8601 date or date-time, not {shown}") from None
    moment = _in_utc(moment, shown, "1900 and now" if bounded else "the years 1 and 9999 (in UTC)")
    if not bounded:
        return moment
    latest = (now or datetime.now(UTC)) + FUTURE_TOLERANCE
    if not EARLIEST <= moment <= latest:
        raise InstantError(f"must lie between 1900 and now, not {shown}")
    return moment


def storable_instant(moment: datetime | str) -> datetime:
    """An interval bound handed in by code (a datetime or ISO text) under the same rule."""
    if isinstance(moment, str):
        return parse_instant(moment, bounded=False)
    return _in_utc(moment, repr(moment.isoformat()[:MAX_TEXT]))
