"""Shared fixtures. Each area keeps its fixtures in tests/fixtures/<area>.py."""

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.model",
    "tests.fixtures.airflow",
    "tests.fixtures.packaging",
    "tests.fixtures.label_studio",
    "tests.fixtures.ground_truth",
]
