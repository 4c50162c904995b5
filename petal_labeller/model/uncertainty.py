"""How unsure the model is about one paper, from the scores of the labels it chose.

The review queue (`petal review queue`) and the active-learning benchmark rank
papers by this number, highest first. Only the chosen labels' scores are
stored, so the measure uses those, and it follows the taxonomy:

- Each chosen label's decision is scored *given its parent*: with capped scores
  (a child never above its parent), `c = score / parent's score` is how sure the
  model is of the refinement once the parent is right (level-1 labels: `c = score`).
  A doubtful parent is then counted once, at the parent, not again at every child.
- A decision's uncertainty is the binary entropy `H(c)` in bits: 1 at 0.5, 0 at 0 or 1.
- Higher levels weigh more: level 1 weight 1, level 2 1/2, level 3 1/4, because a
  wrong label high in the tree makes every label below it wrong too.
- The paper's uncertainty is the weighted mean over its chosen labels, in [0, 1];
  a paper the model gave no label at all is maximally uncertain (1.0).

This is uncertainty sampling (Lewis and Gale 1994; Settles, "Active Learning
Literature Survey", 2009), the idea behind SageMaker Ground Truth's active learning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from petal_labeller.taxonomy import Taxonomy


def binary_entropy(p: float) -> float:
    """H(p) in bits; 0 at p <= 0 or p >= 1."""
    if not 0.0 < p < 1.0:
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def level_weight(level: int) -> float:
    return 0.5 ** (level - 1)


def paper_uncertainty(scores: Mapping[str, float], taxonomy: Taxonomy) -> float:
    """Weighted mean of H(score / parent's score) over the chosen labels; 1.0 for none."""
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
