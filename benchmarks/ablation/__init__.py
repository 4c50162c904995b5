"""Label-quality ablation for PeTaL Labeller (issue 6).

Every model here is scored on the same five cross-validation folds of the shared
labelled papers, so their numbers can be compared row by row. Run it with
`python -m benchmarks.ablation`; embeddings are cached under `.petal/cache`.
"""
