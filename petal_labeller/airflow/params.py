"""UI Params shared by the PeTaL DAGs, and how a run resolves the ones left empty."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from petal_labeller import config
from petal_labeller.airflow.variables import BACKEND as BACKEND_VARIABLE
from petal_labeller.pipeline.stage import MAX_PAPERS
from petal_labeller.versions import MAX_VERSION_LENGTH, VERSION_PARAM_PATTERN

DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_TRAINING_INSTANCE_TYPE = "ml.g4dn.xlarge"
#: What the trigger form shows for each backend choice, the empty one included.
BACKEND_LABELS: dict[Any, str] = {
    None: f"default (Variable {BACKEND_VARIABLE}, else PETAL_BACKEND, else local)",
    "local": "local (on the worker)",
    "sagemaker": "sagemaker (batch transform)",
}


def run_params(instance_type: str = DEFAULT_INSTANCE_TYPE) -> dict[str, Param]:
    """Model version, backend, max papers, instance type, dry run: editable on Trigger."""
    return {
        "model_version": version_param(
            "Model version to use; empty = the current production model."
        ),
        "backend": Param(
            None,
            type=["null", "string"],
            enum=[None, *config.BACKENDS],
            # The form labels each choice from this; without a label the empty choice
            # reads "null". (Serialised, the None key becomes "None", which the form reads.)
            values_display=BACKEND_LABELS,
            description=(
                "local (on the worker) or sagemaker; empty = Airflow Variable "
                f"'{BACKEND_VARIABLE}', else PETAL_BACKEND, else local."
            ),
        ),
        "max_papers": max_papers_param(1, "Label at most this many papers in this run"),
        # Optional ("null" allowed): the form requires every field whose type excludes
        # null, and a local run has no use for it. Empty = the default below.
        "instance_type": optional_instance_type(instance_type, "SageMaker instance type"),
        "dry_run": Param(
            False,
            type="boolean",
            description="Run everything but write nothing to the PeTaL database.",
        ),
    }


def version_param(description: str) -> Param:
    """An optional model version name: `versions.py`'s rule as a JSON schema."""
    return Param(
        None,
        type=["null", "string"],
        pattern=VERSION_PARAM_PATTERN,
        maxLength=MAX_VERSION_LENGTH,
        description=description,
    )


def max_papers_param(minimum: int, what: str) -> Param:
    """An optional cap on papers, bounded as `pipeline.stage.check_max_papers` checks."""
    return Param(
        None,
        type=["null", "integer"],
        minimum=minimum,
        maximum=MAX_PAPERS,
        description=f"{what}; empty = all (at most {MAX_PAPERS:,}).",
    )


def optional_instance_type(default: str, what: str) -> Param:
    """An instance type Param a local run may leave empty; render it with
    `instance_type_template`, which puts the default back."""
    return Param(
        default,
        type=["null", "string"],
        minLength=1,
        description=f"{what} (sagemaker only); empty = {default}.",
    )


def instance_type_template(name: str, default: str) -> str:
    """The Jinja template of an instance type Param: its value, or `default` when empty."""
    return f"{{{{ params.{name} or '{default}' }}}}"


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
