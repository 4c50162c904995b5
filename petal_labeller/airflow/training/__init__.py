"""The retraining flow of `petal_train_model`: its tasks, SageMaker path and approval step."""
