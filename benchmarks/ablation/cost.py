"""Training and inference cost of the recommended recipe on all the shared papers.

Times a production-style fit (inner 5-fold CV of the bases, refit, combiner) on
every paper, and prediction for 1,000 papers, excluding and including encoding.
"""

from __future__ import annotations

import time

import numpy as np

from . import embeddings as emb
from .scorers import Context


def measure(ctx: Context, make_stacker, post) -> dict[str, float]:
    n = len(ctx.y)
    everything = np.arange(n)
    started = time.perf_counter()
    texts = [emb.paper_text(p, "title_abstract") for p in ctx.data.papers]
    emb.encode(texts[:200], emb.minilm_path())
    encode_per_1000 = (time.perf_counter() - started) / 200 * 1000
    stacker = make_stacker()
    # Predicting the training papers themselves: we time the work, not its accuracy.
    started = time.perf_counter()
    stacker(ctx, everything, everything[:1])
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    post(stacker(ctx, everything, everything))
    predict_s = time.perf_counter() - started
    return {
        "fit_all_papers_s (bases' inner CV + refit + combiner, embeddings cached)": fit_s,
        "encode_MiniLM_per_1000_papers_s": encode_per_1000,
        "fit+predict_again_for_630_s (cached inner CV; refit bases + predict)": predict_s,
    }
