"""UI Params shared by the PeTaL DAGs, and how a run resolves the ones left empty."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from petal_labeller import config
from petal_labeller.airflow.variables import BACKEND as BACKEND_VARIABLE
from petal_labeller.versions import VERSION_PATTERN

DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_TRAINING_INSTANCE_TYPE = "ml.g4dn.xlarge"


def run_params(instance_type: str = DEFAULT_INSTANCE_TYPE) -> dict[str, Param]:
    """Model version, backend, max papers, instance type, dry run: editable on Trigger."""
    return {
        "model_version": Param(
            None,
            type=["null", "string"],
            pattern=VERSION_PATTERN,
            description="Model version to use; empty = the current production model.",
        ),
        "backend": Param(
            None,
            type=["null", "string"],
            enum=[None, *config.BACKENDS],
            description=(
                "local (on the worker) or sagemaker; empty = Airflow Variable "
                f"'{BACKEND_VARIABLE}', else PETAL_BACKEND, else local."
            ),
        ),
        "max_papers": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Label at most this many papers in this run; empty = all.",
        ),
        "instance_type": Param(
            instance_type, type="string", description="SageMaker instance type (sagemaker only)."
        ),
        "dry_run": Param(
            False,
            type="boolean",
            description="Run everything but write nothing to the PeTaL database.",
        ),
    }


def resolve_backend(requested: Any) -> str:
    """The Param if set, else the Airflow Variable, else PETAL_BACKEND, else local."""
    if requested:
        backend = str(requested)
    else:
        from airflow.sdk import Variable

        backend = Variable.get(BACKEND_VARIABLE, default=None) or config.default_backend()
    if backend not in config.BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(config.BACKENDS)}")
    return backend
