"""Which numeric precision the encoder runs at: fast only where it keeps the scores.

`auto` picks bf16 autocast where the CPU has native bf16 (2-3x faster than fp32
there), but bf16 moves scores, and the move is heavy-tailed: on the production
artefact (996 shared papers, native bf16) the median paper's largest change is
0.0002 and one paper's is 0.011. So at load, before `auto` keeps bf16, the
artefact scores its check papers at fp32 and at bf16; if any score of any label
moves by `CHECK_LIMIT` or more, the model runs fp32 and says so in the log. A
precision asked for by name (`PETAL_INFERENCE_PRECISION=bf16`, `precision=`) is
the operator's choice and is not second-guessed.

The check papers are the artefact's check_papers.json (checked at load with
the rest of the artefact, runtime/validate.py): real training papers, the 32
whose scores bf16 moved most when the artefact was written (model/checks.py),
so the check looks at the tail, not at typical papers (32 papers spread over
length moved by 0.0017 and missed the 0.011 one). An artefact written before
them falls back to papers made of labels.json's path names, short and run
together; those sit far from every training paper, where the kNN's top-k are
near ties, and move by about 0.034: stricter than real papers.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: The issue's bound: the fast path may move no score by this much against fp32.
TOLERANCE = 0.01
#: What the check papers must stay under: half the bound, since the papers a
#: model labels later are not the check papers (unseen papers moved about 3x more
#: than trained-on ones spread over length in a holdout run, docs/benchmarks.md).
CHECK_LIMIT = TOLERANCE / 2
#: Long check papers: each the label path names run together to the model's length.
LONG_CHECK_PAPERS = 4
MAX_NAME_CHARS = 200


def native_bf16() -> bool:
    """Whether this CPU has native bf16 kernels (oneDNN's own test)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_precision(requested: str) -> str:
    """The precision to try: bf16 for `auto` where the CPU has native bf16, else fp32.

    int8 dynamic quantization is available on request but never chosen by
    itself: it moved kNN scores by more than 0.01 in our tests.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested != "auto":
        return requested
    return "bf16" if native_bf16() else "fp32"


def check_papers(model: Any) -> list[dict[str, Any]]:
    """The artefact's real check papers (check_papers.json, checked at load), or for an
    artefact written before them, its label-name papers."""
    real = getattr(model, "check_papers", None)
    if real:
        return [dict(paper) for paper in real]
    return label_name_papers(model)


def label_name_papers(model: Any) -> list[dict[str, Any]]:
    """Check papers from labels.json alone: label path names, short and run together."""
    names = dict(zip(model.label_ids, map(_name, model.labels), strict=True))
    paths = []
    for column, label_id in enumerate(model.label_ids):
        chain = [model.label_ids[a] for a in reversed(model.ancestors[column])] + [label_id]
        paths.append(" > ".join(names[c] for c in chain))
    papers = [{"title": path} for path in paths]
    words_per_paper = max(1, model.max_length)  # at least a word-piece a word: full length
    words = " ".join(paths).split()
    for k in range(LONG_CHECK_PAPERS):
        start = (k * len(words)) // LONG_CHECK_PAPERS
        text = " ".join((words[start:] + words)[:words_per_paper])
        papers.append({"title": paths[k % len(paths)], "abstract": text})
    return papers


def _name(label: dict[str, Any]) -> str:
    name = label.get("name")
    return (name if isinstance(name, str) and name.strip() else str(label["id"]))[:MAX_NAME_CHARS]


def paper_drift(model: Any, precision: str, papers: list[dict[str, Any]]) -> np.ndarray:
    """Each paper's largest change of any label's score between fp32 and `precision`."""
    kept = model.precision
    try:
        model.precision = "fp32"
        exact = model.score(papers)
        model.precision = precision
        fast = model.score(papers)
    finally:
        model.precision = kept
    return np.abs(fast - exact).max(axis=1) if exact.size else np.zeros(len(papers))


def score_drift(model: Any, precision: str, papers: list[dict[str, Any]]) -> float:
    """Largest change of any score of any label between fp32 and `precision` on `papers`."""
    moved = paper_drift(model, precision, papers)
    return float(moved.max()) if moved.size else 0.0


def verified_precision(model: Any, precision: str, limit: float = CHECK_LIMIT) -> str:
    """`precision` if it moves no check-paper score by `limit` or more, else "fp32" (logged)."""
    if precision == "fp32":
        return precision
    drift = score_drift(model, precision, check_papers(model))
    if drift >= limit:
        log.warning(
            "%s moves a score of the artefact's check papers by %.4f against fp32 "
            "(limit %.4f): using fp32", precision, drift, limit,
        )  # fmt: skip
        return "fp32"
    log.info("%s moves check-paper scores by at most %.4f (limit %.4f)", precision, drift, limit)
    return precision
