#!/bin/sh
# Amazon MWAA start-up script for PeTaL Labeller (docs/deploy.md, section 7).
# MWAA runs it on every container before Airflow starts and keeps what it exports.
# MWAA takes no secret in its configuration, so the PeTaL store's URL comes from
# Secrets Manager, read under the environment's execution role with boto3 (in every
# MWAA image: the Amazon provider needs it) in the environment's own region.
# Nothing here prints the URL: a failure says only which secret could not be read.
PETAL_DATABASE_SECRET_ID="${PETAL_DATABASE_SECRET_ID:-petal/database-url}"
export PETAL_DATABASE_SECRET_ID
if PETAL_DATABASE_URL="$(python3 -c '
import os, sys
import boto3
secret = os.environ["PETAL_DATABASE_SECRET_ID"]
try:
    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
except Exception as exc:
    sys.exit(f"petal: cannot read secret {secret!r}: {type(exc).__name__}")
print(value)
')"; then
    export PETAL_DATABASE_URL
else
    unset PETAL_DATABASE_URL
fi
# Where a failed run's alert goes (the `petal_smtp` connection sends it).
# export PETAL_ALERT_TO=team@example.org
# Where a run's files pass between MWAA's workers, which share no disk (docs/deploy.md,
# section 8): an s3:// prefix the execution role may read, write and delete under.
# export PETAL_WORKSPACE_URL=s3://my-petal-bucket/petal/workspace/
