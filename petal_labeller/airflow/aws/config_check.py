"""Check the sagemaker backend's configuration before a run creates anything.

A missing Variable, region or credentials is not a transient fault: retrying it
three times and then failing the cleanup too (nothing to clean, no region to
clean it in) cost ten minutes and two alerts. The first task of each flow calls
`sagemaker_problems` and fails at once, naming everything that is missing.

Credentials are looked for where the provider's hook looks, without calling AWS:
keys in the connection, else botocore's own chain (environment, shared files and
profile, container and instance metadata) for the base session a role is
assumed from. Whether AWS accepts them is left to the first real call, whose
errors the provider reports.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from petal_labeller.airflow import variables
from petal_labeller.airflow.variables import AWS_CONN_ID

_IMAGE = re.compile(r"^[\w.-]+(:\d+)?/[\w./-]+([:@][\w.:-]+)?$")
_ROLE = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def _variable(name: str) -> str | None:
    from airflow.sdk import Variable

    value = Variable.get(name, default=None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _connection(aws_conn_id: str):
    """The provider's view of the connection (an empty one where none is defined); None
    where it cannot be read, and the region and credentials checks then use boto3's own."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook

    try:
        return AwsGenericHook(aws_conn_id=aws_conn_id, client_type="sts").conn_config
    except Exception:  # a malformed connection: the checks below name the connection
        return None


def _region(config) -> str | None:
    """The region the provider's hook would use: the connection's extra, else boto3's own."""
    import boto3

    region = config.region_name if config is not None else None
    return region or boto3.session.Session().region_name or os.environ.get("AWS_REGION")


def _has_credentials(config) -> bool:
    """Whether the hook would find credentials to sign with (no AWS call is made)."""
    import boto3

    if config is not None:
        if config.aws_access_key_id and config.aws_secret_access_key:
            return True
        if config.role_arn and config.assume_role_method == "assume_role_with_web_identity":
            return True  # the web identity token is the base credential, read by the hook
    profile = config.profile_name if config is not None else None
    try:
        return boto3.session.Session(profile_name=profile).get_credentials() is not None
    except Exception:  # an unknown profile or unreadable config is no credentials either
        return False


def sagemaker_problems(required: Iterable[str], aws_conn_id: str = AWS_CONN_ID) -> list[str]:
    """What stops the sagemaker backend from running, one line each; empty when ready."""
    problems = []
    values = {name: _variable(name) for name in required}
    for name, value in values.items():
        if value is None:
            problems.append(f"Airflow Variable {name!r} is not set")
    for name in (variables.IMAGE, variables.TRAINING_IMAGE):
        if values.get(name) and not _IMAGE.match(values[name]):
            problems.append(f"Variable {name!r} = {values[name]!r} is not an image URI")
    role = values.get(variables.ROLE)
    if role and not _ROLE.match(role):
        problems.append(f"Variable {variables.ROLE!r} = {role!r} is not an IAM role ARN")
    config = _connection(aws_conn_id)
    if not _region(config):
        problems.append(
            f"no AWS region: set region_name in the extra of connection {aws_conn_id!r} "
            "(or AWS_DEFAULT_REGION on the workers)"
        )
    if not _has_credentials(config):
        problems.append(
            f"no AWS credentials: connection {aws_conn_id!r} has no keys and none were found "
            "in the workers' environment, shared credential files or instance metadata"
        )
    return problems
