"""One parser for instants from outside: ISO 8601, naive = UTC, between 1900 and now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from petal_labeller.instants import InstantError, parse_instant
from petal_labeller.papers import PaperError, parse_paper

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-02", datetime(2026, 11, 2, tzinfo=UTC)),
        ("2026-11-02T09:30:00Z", datetime(2026, 11, 2, 9, 30, tzinfo=UTC)),
        ("2026-11-04T08:00:00+02:00", datetime(2026, 11, 4, 6, 0, tzinfo=UTC)),
        ("1900-01-01", datetime(1900, 1, 1, tzinfo=UTC)),
    ],
)
def test_iso_instants_are_read_as_utc(text, expected):
    assert parse_instant(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("yesterday", "ISO 8601"),
        ("20260-11-04", "ISO 8601"),
        ("2026-11-04" + " " * 100, "ISO 8601"),
        ("9" * 10_000, "ISO 8601"),
        ("1066-10-14", "between 1900 and now"),
        ("9999-12-31", "between 1900 and now"),
        ((NOW + timedelta(days=2)).isoformat(), "between 1900 and now"),
    ],
)
def test_anything_else_is_refused_with_a_short_reason(text, reason):
    with pytest.raises(InstantError) as caught:
        parse_instant(text, now=NOW)
    assert reason in str(caught.value)
    assert len(str(caught.value)) < 200  # a huge value is never echoed whole


def test_a_paper_names_the_field_of_a_bad_instant():
    with pytest.raises(PaperError) as caught:
        parse_paper({"title": "Gecko feet", "ingested_at": "9999-12-31"})
    assert caught.value.field == "ingested_at"
    assert "between 1900 and now" in str(caught.value)


def test_interval_bounds_may_lie_in_the_future_but_must_be_iso(migrated_database_url):
    """`--until 2030-01-01` is a fine upper bound; only an ingestion time is capped at now."""
    from click.testing import CliRunner

    from petal_labeller.cli import main

    base = ["--database-url", migrated_database_url, "papers", "pending", "--since", "2026-11-01"]
    assert CliRunner().invoke(main, [*base, "--until", "2030-01-01"]).exit_code == 0
    result = CliRunner().invoke(main, [*base, "--until", "next year"])
    assert result.exit_code == 2 and "ISO 8601" in result.output
