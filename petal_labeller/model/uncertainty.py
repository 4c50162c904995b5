"""How unsure the model is about one paper, from the scores of the labels it chose.

The review queue (`petal review queue`) and the active-learning benchmark rank
papers by `paper_uncertainty`, highest first. Only the chosen labels' scores are
stored, and the model always chooses its top label and closes its choice
upwards, so the measure walks the taxonomy along the model's own best path:

- start at the best-scored level-1 label, then take its best-scored chosen
  child, and so on down to the deepest chosen level;
- each step's confidence is taken *given its parent*: `c = score / parent's score`
  (scores are capped, a child never above its parent, so `c` is in [0, 1]; level
  1: `c = score`). A doubtful parent is counted once, at the parent;
- a step's doubt is `1 - c` (least confidence); levels weigh 1, 1/2, 1/4
  (level 1, 2, 3), because a wrong label high in the tree makes every label below
  it wrong too;
- the paper's uncertainty is the weighted mean doubt along the path, in [0, 1];
  a paper the model gave no label at all is 1.

This is least-confidence uncertainty sampling (Lewis and Gale 1994; Settles,
"Active Learning Literature Survey", 2009), the idea behind SageMaker Ground
Truth's active learning, applied per level of the tree. The simulation
(`python -m benchmarks active_learning`, docs/model-card.md, with the production
model and with the TF-IDF baseline) measured it against random choice and
against the alternatives: plain least confidence on the top label and a
diversity mix (Zhdanov 2019) did not measurably beat it; the first measure
tried, the level-weighted binary entropy of every chosen label
(`entropy_uncertainty`, kept for that comparison), did not beat random choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from petal_labeller.taxonomy import Taxonomy

Children = Mapping[str | None, list[str]]


def children_map(taxonomy: Taxonomy) -> dict[str | None, list[str]]:
    """Each label's children (None: the level-1 labels), computed once for many papers."""
    found: dict[str | None, list[str]] = {}
    for label_id in taxonomy.ids:
        found.setdefault(taxonomy.parent(label_id), []).append(label_id)
    return found


def level_weight(level: int) -> float:
    return 0.5 ** (level - 1)


def best_path(
    scores: Mapping[str, float], taxonomy: Taxonomy, children: Children | None = None
) -> list[tuple[str, float]]:
    """The best root-to-leaf path through the chosen labels: (label, score given its parent)."""
    children = children if children is not None else children_map(taxonomy)
    path, parent, parent_score = [], None, 1.0
    while True:
        options = [c for c in children.get(parent, ()) if c in scores]
        if not options:
            return path
        best = max(options, key=lambda c: (scores[c], c))
        score = scores[best]
        path.append((best, min(1.0, score / parent_score) if parent_score > 0 else 0.0))
        parent, parent_score = best, score


def paper_uncertainty(
    scores: Mapping[str, float], taxonomy: Taxonomy, children: Children | None = None
) -> float:
    """Weighted mean of 1 - (score given the parent) along the best path; 1.0 for no labels."""
    path = best_path(scores, taxonomy, children)
    if not path:
        return 1.0
    weights = [level_weight(depth) for depth in range(1, len(path) + 1)]
    doubt = sum(w * (1.0 - c) for w, (_, c) in zip(weights, path, strict=True))
    return doubt / sum(weights)


def binary_entropy(p: float) -> float:
    """H(p) in bits; 0 at p <= 0 or p >= 1."""
    if not 0.0 < p < 1.0:
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def entropy_uncertainty(scores: Mapping[str, float], taxonomy: Taxonomy) -> float:
    """The first measure tried: level-weighted mean of H(score / parent's score) over every
    chosen label. No better than random choice in the simulation; kept for that record."""
    total = weights = 0.0
    for label_id, score in scores.items():
        if label_id not in taxonomy:
            continue
        parent = taxonomy.parent(label_id)
        parent_score = scores.get(parent, 1.0) if parent else 1.0
        conditional = min(1.0, score / parent_score) if parent_score > 0 else 0.0
        weight = level_weight(taxonomy.level(label_id))
        total += weight * binary_entropy(conditional)
        weights += weight
    return total / weights if weights else 1.0
