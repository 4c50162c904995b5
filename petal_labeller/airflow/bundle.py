"""A DAG bundle of the PeTaL DAGs as installed with the package (Airflow 3's way to add DAGs).

Add it to `[dag_processor] dag_bundle_config_list` beside the team's own bundles:

    {"name": "petal", "classpath": "petal_labeller.airflow.bundle.PetalDagBundle", "kwargs": {}}

It is a `LocalDagBundle` whose path defaults to `dag_files.dags_folder()`, so the
DAGs update with `pip install --upgrade petal-labeller`, with no copy to keep in step.
"""

from __future__ import annotations

from typing import Any

from airflow.dag_processing.bundles.local import LocalDagBundle

from petal_labeller.airflow.dag_files import dags_folder


class PetalDagBundle(LocalDagBundle):
    """The package's DAG folder as a bundle; `path` may still be given to override it."""

    def __init__(self, *, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(path=path or str(dags_folder()), **kwargs)
