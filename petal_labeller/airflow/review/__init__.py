"""The review flow (`petal_review_papers`): tasks, and Ground Truth jobs through the provider."""
