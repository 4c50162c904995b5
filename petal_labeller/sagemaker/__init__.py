"""What runs inside SageMaker (and, identically, on a local worker): inference and training."""
