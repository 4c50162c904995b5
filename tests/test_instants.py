"""One parser for instants from outside: ISO 8601, naive = UTC, between 1900 and now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# Issue 24 item 8: what Python reads but PostgreSQL cannot store.

UNSTORABLE = [
    ("2026-11-02T10:00:00-23:59", "beyond +-15:59"),
    ("2026-11-02T10:00:00+16:00", "beyond +-15:59"),
    ("2026-11-02T10:00:00-16:00", "beyond +-15:59"),
    ("2026-11-02T10:00:00+05:30:00.5", "fractions of a second"),
]


@pytest.mark.parametrize(("text", "reason"), UNSTORABLE)
@pytest.mark.parametrize("bounded", [True, False])
def test_offsets_postgresql_cannot_store_are_refused(text, reason, bounded):
    with pytest.raises(InstantError) as caught:
        parse_instant(text, now=NOW, bounded=bounded)
    assert reason in str(caught.value)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_interval_bounds_outside_pythons_years_in_utc_are_refused(text):
    with pytest.raises(InstantError, match="between the years 1 and 9999"):
        parse_instant(text, bounded=False)


def test_instants_come_back_in_utc():
    moment = parse_instant("2026-11-02T10:00:00+15:59", now=NOW)
    assert moment.utcoffset() == timedelta(0)
    assert moment == datetime(2026, 11, 1, 18, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    day=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    minutes=st.integers(-24 * 60 + 1, 24 * 60 - 1),
    seconds=st.sampled_from(["", ":07", ":30.25"]),
    bounded=st.booleans(),
)
def test_every_instant_the_rule_accepts_postgresql_stores_and_gives_back(
    pg_cursor, day, minutes, seconds, bounded
):
    sign, whole = ("-" if minutes < 0 else "+"), abs(minutes)
    text = f"{day.replace(microsecond=0).isoformat()}{sign}{whole // 60:02d}:{whole % 60:02d}"
    text += seconds
    try:
        moment = parse_instant(text, now=NOW, bounded=bounded)
    except InstantError:
        return
    pg_cursor.execute("SELECT %s::timestamptz", (moment,))
    assert pg_cursor.fetchone()[0] == moment


@pytest.fixture(scope="module")
def pg_cursor():
    import os

    import psycopg2

    url = os.environ.get("PETAL_DATABASE_URL")
    if not url:
        pytest.skip("needs PETAL_DATABASE_URL")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            yield cur
    finally:
        conn.close()


def test_an_unstorable_ingested_at_is_that_records_rejection(db_conn, tmp_path):
    from petal_labeller.store.papers import import_papers
    from petal_labeller.taxonomy import Taxonomy

    path = tmp_path / "papers.jsonl"
    lines = [
        {"title": "Gecko feet", "ingested_at": "2026-11-02T10:00:00-16:00"},
        {"title": "Lotus leaves", "ingested_at": "2026-11-02T10:00:00+02:00"},
        {"title": "Owl wings", "ingested_at": "2026-11-02T10:00:00+23:59"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    report = import_papers(db_conn, path, Taxonomy([]), tmp_path / "rejects.jsonl")
    assert report.inserted == 1
    rejected = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [(1, "ingested_at"), (3, "ingested_at")]


@pytest.mark.parametrize(
    "args",
    [
        ["label", "--since", "2026-11-01T00:00:00+23:59"],
        ["label", "--until", "2026-11-01T00:00:00-16:00"],
        ["papers", "pending", "--since", "2026-11-01T00:00:00-23:59", "--until", "2026-12-01"],
        ["labels", "export", "--since", "2026-11-01T00:00:00+16:00", "--output", "-"],
        ["papers", "import", "x.jsonl", "--ingested-at", "2026-11-01T00:00:00-23:59"],
    ],
)
def test_cli_options_with_unstorable_offsets_exit_2_with_one_clear_error(
    migrated_database_url, tmp_path, monkeypatch, args
):
    from click.testing import CliRunner

    from petal_labeller.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.jsonl").write_text('{"title": "Gecko feet"}\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--database-url", migrated_database_url, *args])
    assert result.exit_code == 2, result.output
    assert "beyond +-15:59" in result.output and "Traceback" not in result.output
