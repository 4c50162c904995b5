"""Instants that come from outside (a paper's `ingested_at`, `--ingested-at`, a review's
`reviewed_at`): one parser and one set of bounds, so no path accepts year 9999 or 1066.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

#: An instant must lie between these (a typo such as year 20026 or 0206 is an error).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)
#: Longer text is no ISO 8601 instant; refused before parsing.
MAX_TEXT = 64


class InstantError(ValueError):
    """The text is not an ISO 8601 instant between 1900 and now; the message says which."""


def parse_instant(value: str, *, now: datetime | None = None, bounded: bool = True) -> datetime:
    """An ISO 8601 date or date-time (naive = UTC) between 1900 and a day from `now`.

    `bounded=False` is for interval bounds (`--until 2030-01-01` is a fine upper bound),
    which are still only ISO 8601 text of bounded length.
    """
    shown = repr(value[:MAX_TEXT]) + ("..." if len(value) > MAX_TEXT else "")
    try:
        if len(value) > MAX_TEXT:
            raise ValueError
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InstantError(f"must be an ISO 8601 date or date-time, not {shown}") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not bounded:
        return moment
    latest = (now or datetime.now(UTC)) + FUTURE_TOLERANCE
    if not EARLIEST <= moment <= latest:
        raise InstantError(f"must lie between 1900 and now, not {shown}")
    return moment
