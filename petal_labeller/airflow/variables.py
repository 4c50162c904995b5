"""The Airflow Variables and connection the PeTaL DAGs read, by name, in one place
(docs/airflow.md lists them)."""

from __future__ import annotations

#: The Airflow connection every AWS call goes through (S3, SageMaker, the config check).
AWS_CONN_ID = "aws_default"

#: `local` or `sagemaker` when a run's `backend` Param is empty.
BACKEND = "petal_backend"
#: The S3 bucket the sagemaker backend stages under (see `s3_layout`).
BUCKET = "petal_s3_bucket"
#: The serving image for batch transform, and the training image.
IMAGE = "petal_sagemaker_image"
TRAINING_IMAGE = "petal_sagemaker_training_image"
#: The IAM role SageMaker runs jobs as.
ROLE = "petal_sagemaker_role"

#: `false` where no triggerer runs: SageMaker waits then poll on the worker instead of
#: deferring (the default, `true`, frees the worker slot while a job runs).
DEFERRABLE = "petal_sagemaker_deferrable"

#: What each sagemaker flow needs set.
LABELLING_SAGEMAKER = (BUCKET, IMAGE, ROLE)
TRAINING_SAGEMAKER = (BUCKET, TRAINING_IMAGE, ROLE)


def template(name: str) -> str:
    """The Jinja expression that renders Variable `name` in an operator's template field."""
    return "{{ var.value." + name + " }}"


#: Review batches (`petal_review_papers`): the backend when the run's Param is empty
#: (`label_studio`, `ground_truth` or `files`), the Label Studio project's name, and
#: Ground Truth's private workteam, pre/post Lambdas and the role its job runs as
#: (empty: petal_sagemaker_role). Label Studio's URL and token are connection
#: `petal_label_studio` (host, password), never a Variable.
REVIEW_BACKEND = "petal_review_backend"
LABEL_STUDIO_CONN_ID = "petal_label_studio"
LABEL_STUDIO_PROJECT = "petal_label_studio_project"
GROUND_TRUTH_WORKTEAM = "petal_ground_truth_workteam"
GROUND_TRUTH_PRE_LAMBDA = "petal_ground_truth_pre_lambda"
GROUND_TRUTH_POST_LAMBDA = "petal_ground_truth_post_lambda"
GROUND_TRUTH_ROLE = "petal_ground_truth_role"
GROUND_TRUTH = (BUCKET, GROUND_TRUTH_WORKTEAM, GROUND_TRUTH_PRE_LAMBDA, GROUND_TRUTH_POST_LAMBDA)

#: How many papers curated (reviewed) since the production model was registered start a
#: retrain when a review batch is applied (the `petal_curated_papers` Asset); the weekly
#: and manual runs train whatever the count.
RETRAIN_MIN_CURATED = "petal_retrain_min_curated"
RETRAIN_MIN_CURATED_DEFAULT = 50
