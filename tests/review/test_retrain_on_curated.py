"""Applied review batches start a retrain (issue 27): the Asset schedules petal_train_model,
and `enough_curated` lets an Asset-started run train only with enough new curated papers."""

from __future__ import annotations

import pytest

from petal_labeller.airflow import variables
from petal_labeller.airflow.training.flow import parse_min_curated
from petal_labeller.store.models import production_model, register_model_version
from petal_labeller.store.reviews import papers_reviewed_since
from tests.review.test_collect import answer, collect
from tests.review.test_collect import sent as sent


def test_papers_reviewed_after_the_production_model_are_counted_and_a_new_model_resets_it(
    sent,
):
    conn = sent["conn"]
    since = production_model(conn).created_at
    assert papers_reviewed_since(conn, since) == 0
    report = collect(sent, [answer(sent, "torn", labels=["heat"]),
                            answer(sent, "sure", labels=["swim"])])  # fmt: skip
    assert report.curated == 2
    assert papers_reviewed_since(conn, since) == 2
    assert papers_reviewed_since(conn, None) == 2  # no production model: every review
    register_model_version(conn, "v2", base_model="test", artefact_uri="y", promote=True)
    assert papers_reviewed_since(conn, production_model(conn).created_at) == 0


@pytest.mark.parametrize(("raw", "expected"), [(None, 50), ("", 50), ("  ", 50), (" 7 ", 7),
                                               ("1", 1), ("1000000", 1_000_000)])  # fmt: skip
def test_the_threshold_variable_takes_whole_numbers_and_defaults_when_empty(raw, expected):
    assert variables.RETRAIN_MIN_CURATED_DEFAULT == 50
    assert parse_min_curated(raw) == expected


@pytest.mark.parametrize("raw", ["0", "-5", "abc", "1e3", "2.5", "١٢", "1000001", "9" * 5000])
def test_a_bad_threshold_is_refused_naming_the_variable(raw):
    with pytest.raises(ValueError, match="petal_retrain_min_curated") as caught:
        parse_min_curated(raw)
    assert len(str(caught.value)) < 200  # a long value is cut, not echoed whole


def test_the_training_dag_runs_weekly_and_on_applied_review_batches(dag_bag):
    from airflow.sdk import AssetOrTimeSchedule

    from petal_labeller.airflow.assets import CURATED_PAPERS

    dag = dag_bag.get_dag("petal_train_model")
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.timetable.expression == "0 0 * * 0"
    assert dag.timetable.asset_condition == CURATED_PAPERS
    review = dag_bag.get_dag("petal_review_papers")
    assert CURATED_PAPERS in review.get_task("collect_and_apply").outlets
    gate = dag.get_task("enough_curated")
    assert gate.upstream_task_ids == {"check_config"}
    assert gate.downstream_task_ids == {"export"}
