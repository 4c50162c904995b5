"""The inference runtime: everything that turns a model artefact and papers into labels.

The bottom layer of the package: it imports only the standard library, numpy,
torch, transformers, safetensors and `petal_labeller.papers` (the record format),
never `model/`, `pipeline/` or an entry point. Training imports its network,
text building and scorers from here, so training, evaluation and serving share
one code path.

Which code labels a paper in production: the image's (or this checkout's)
installed `petal_labeller.runtime`, always. An artefact is data only (safetensors
and JSON); it carries no code and records in `runtime.json` the runtime format
it was written for, and a runtime refuses any other format (`validate.py`). The
other rule, code travelling with the weights, would make every artefact an
executable (a tampered one runs its code with the container's rights before any
check), needs the runtime kept in one file to be copied, and is what SageMaker's
framework images do but our bring-your-own image never did: `serve` always ran
the image's copy. docs/deploy.md has the rule for operators.

Modules, bottom up: errors, jsonlines (the wire format), text (record -> text),
network (encoder + head), scorers, tfidf, combine (stack, hierarchy, choice),
archive (safe model.tar.gz reading), validate (an artefact folder's checks),
precision (which precision runs, checked against fp32), model (the loaded
model), load (`load_model`, the one load of an artefact folder or tarball: validate,
then build), handlers (SageMaker's model_fn / input_fn / predict_fn / output_fn).
"""
