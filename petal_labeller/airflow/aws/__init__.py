"""What the flows hand to AWS: SageMaker configs and cleanup, S3 layout and staging, checks."""
