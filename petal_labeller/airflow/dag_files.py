"""Where the PeTaL DAG files are, so a team's Airflow can load them from the package.

The wheel ships this repository's `dags/` as `petal_labeller/dags/` (setup.py). A
team points its DAG processor there with the DAG bundle in `bundle.py`, or copies
the files into its own DAG folder in one line:

    cp "$(python -m petal_labeller.airflow.dag_files)"/petal_*.py "$AIRFLOW_HOME/dags/"

Imports nothing from Airflow, so it also answers on a machine without it.
"""

from __future__ import annotations

from pathlib import Path

from petal_labeller import config

DAG_FILES = (
    "petal_label_papers.py",
    "petal_relabel_papers.py",
    "petal_review_papers.py",
    "petal_train_model.py",
)


def dags_folder() -> Path:
    """The installed package's DAG files, else (an editable install) the checkout's dags/."""
    packaged = Path(__file__).resolve().parent.parent / "dags"
    if (packaged / DAG_FILES[0]).is_file():
        return packaged
    return config.REPO_ROOT / "dags"


if __name__ == "__main__":
    print(dags_folder())
