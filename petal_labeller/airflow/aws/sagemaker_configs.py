"""Request bodies for the Amazon provider's SageMaker operators, built by small pure functions.

The DAGs hand these dicts to `SageMakerModelOperator`, `SageMakerTransformOperator`,
`SageMakerTrainingOperator` and `SageMakerDeleteModelOperator`, whose `config` is
a template field: names and S3 URIs may be Jinja strings rendered per run, and
show up in the UI's rendered view.
"""

from __future__ import annotations

from typing import Any

from petal_labeller.runtime.jsonlines import JSONLINES

#: Our image runs its own installed runtime (docs/deploy.md); the artefact is data only,
#: so no SAGEMAKER_PROGRAM: that names a script for SageMaker's framework images.
INFERENCE_ENVIRONMENT = {
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
}


def model_config(
    model_name: str, image_uri: str, model_data_url: str, role_arn: str
) -> dict[str, Any]:
    """CreateModel: the serving image (which holds the code) plus our data-only model.tar.gz."""
    return {
        "ModelName": model_name,
        "PrimaryContainer": {
            "Image": image_uri,
            "ModelDataUrl": model_data_url,
            "Environment": dict(INFERENCE_ENVIRONMENT),
        },
        "ExecutionRoleArn": role_arn,
    }


def transform_config(
    job_name: str,
    model_name: str,
    input_uri: str,
    output_uri: str,
    instance_type: str,
    *,
    instance_count: int = 1,
    max_payload_mb: int = 6,
) -> dict[str, Any]:
    """CreateTransformJob over a JSONL file: many papers per request, one output line each.

    SplitType=Line with BatchStrategy=MultiRecord packs whole lines into each
    request (up to MaxPayloadInMB); AssembleWith=Line joins the responses so
    `<input>.out` has one line per input line, in order.
    """
    return {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": max_payload_mb,
        "MaxConcurrentTransforms": 1,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": JSONLINES,
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": output_uri,
            "Accept": JSONLINES,
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
    }


def training_config(
    job_name: str,
    image_uri: str,
    role_arn: str,
    train_uri: str,
    output_uri: str,
    instance_type: str,
    hyperparameters: dict[str, Any] | None = None,
    *,
    max_runtime_s: int = 6 * 3600,
    volume_gb: int = 30,
) -> dict[str, Any]:
    """CreateTrainingJob running our training entry point on the `train` channel.

    The channel holds papers.jsonl and taxonomy.json (SM_CHANNEL_TRAIN);
    SageMaker writes SM_MODEL_DIR to `<output_uri>/<job>/output/model.tar.gz`.
    Hyperparameters must be strings in the SageMaker API.
    """
    return {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": "File"},
        "RoleArn": role_arn,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": train_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
        "HyperParameters": {key: str(value) for key, value in (hyperparameters or {}).items()},
    }


def delete_model_config(model_name: str) -> dict[str, str]:
    """DeleteModel: what the cleanup task removes whether the run succeeded or failed."""
    return {"ModelName": model_name}


def transform_output_key(output_prefix: str, input_key: str) -> str:
    """Where batch transform writes the results of one input object: `<prefix>/<name>.out`."""
    name = input_key.rsplit("/", 1)[-1]
    return f"{output_prefix.rstrip('/')}/{name}.out"
