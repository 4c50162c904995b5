"""The steps a labelling or training DAG runs, each a plain function with plain inputs.

One paper's path: `stage` (select the pending papers of a window, write JSONL) ->
`infer` (batch inference on the worker: the package's runtime handlers) ->
`validate` (one result per input, scores in [0, 1], known labels; error lines
quarantined) -> `write` (labels + run row in one transaction). `workspace`
holds the files of one run. Retraining: `retrain` is the run (export -> train ->
evaluate -> gate -> promote, a typed `RetrainRun`), `training` its numbers (the
split, scoring, the gate's rule).
Nothing here imports Airflow.
"""
