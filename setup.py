"""Only what pyproject.toml cannot say: the DAG files in dags/ ship inside the wheel.

They become `petal_labeller/dags/` in site-packages, so a team that installs the
wheel gets the DAGs without this repository (`python -m petal_labeller.airflow.dag_files`
prints the folder; `petal_labeller.airflow.bundle.PetalDagBundle` is a DAG bundle).
A build context without dags/ (the SageMaker image) builds the package without them.
Everything else about the package is in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

HAS_DAGS = (Path(__file__).resolve().parent / "dags").is_dir()

setup(
    packages=[
        *find_packages(include=["petal_labeller*"]),
        *(["petal_labeller.dags"] if HAS_DAGS else []),
    ],
    package_dir={"petal_labeller.dags": "dags"} if HAS_DAGS else {},
)
