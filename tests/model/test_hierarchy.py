"""The hierarchy rules the runtime applies to a model's scores (labeller.json "hierarchy")."""

from __future__ import annotations

import numpy as np

from petal_labeller.runtime.combine import apply_hierarchy

# protect > non_living > temperature; move (a root) beside them.
PARENTS = np.array([-1, 0, 1, -1])
ORDER = np.array([0, 3, 1, 2])  # by depth, roots first
SCORES = np.array([[0.2, 0.5, 0.9, 0.1], [0.8, 0.3, 0.1, 0.6]], dtype=np.float32)


def test_lift_raises_every_ancestor_to_its_best_descendant_and_nothing_else():
    lifted = apply_hierarchy(SCORES, "lift", PARENTS, ORDER)
    np.testing.assert_allclose(lifted, [[0.9, 0.9, 0.9, 0.1], [0.8, 0.3, 0.1, 0.6]])
    assert lifted is not SCORES and SCORES[0, 0] == np.float32(0.2), "the input is not changed"


def test_cap_lowers_every_descendant_to_its_ancestors():
    capped = apply_hierarchy(SCORES, "cap", PARENTS, ORDER)
    np.testing.assert_allclose(capped, [[0.2, 0.2, 0.2, 0.1], [0.8, 0.3, 0.1, 0.6]])


def test_both_rules_leave_no_child_above_its_parent_and_none_changes_nothing():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 4)).astype(np.float32)
    for mode in ("lift", "cap"):
        out = apply_hierarchy(scores, mode, PARENTS, ORDER)
        for child, parent in enumerate(PARENTS):
            if parent >= 0:
                assert (out[:, child] <= out[:, parent]).all(), mode
    assert apply_hierarchy(scores, "none", PARENTS, ORDER) is scores
