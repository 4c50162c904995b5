"""SageMaker resource names that are unique per DAG run and per task try.

A retry must never reuse the name of a half-finished job from the try before,
and SageMaker names allow at most 63 characters of `[A-Za-z0-9-]`, while
Airflow run ids are long and full of `:+.`; so the run is hashed.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME_LENGTH = 63
_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")


def run_digest(dag_id: str, run_id: str, length: int = 12) -> str:
    """A short stable hex digest of one DAG run."""
    return hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:length]


def sagemaker_name(kind: str, dag_id: str, run_id: str, try_number: int | str) -> str:
    """`petal-<kind>-<run digest>-t<try>`, at most 63 characters, SageMaker's alphabet."""
    suffix = f"-{run_digest(dag_id, run_id)}-t{int(try_number)}"
    slug = _NOT_ALLOWED.sub("-", f"petal-{kind}".lower()).strip("-")
    return slug[: MAX_NAME_LENGTH - len(suffix)].rstrip("-") + suffix


def run_key(dag_id: str, run_id: str) -> str:
    """`<dag>/<run digest>`: one DAG run's key, the name of its local workspace and the
    tail of its S3 prefixes (`s3_layout.labelling_prefix` / `training_prefix`)."""
    return f"{_NOT_ALLOWED.sub('-', dag_id.lower()).strip('-')}/{run_digest(dag_id, run_id)}"


def sagemaker_name_prefix(kind: str, dag_id: str, run_id: str) -> str:
    """What every try's `sagemaker_name(kind, dag_id, run_id, try)` starts with."""
    name = sagemaker_name(kind, dag_id, run_id, 1)
    return name[: name.rindex("-t") + 2]


#: Jinja helpers the operator configs use; every DAG passes this as `user_defined_macros`.
MACROS = {"sagemaker_name": sagemaker_name}
