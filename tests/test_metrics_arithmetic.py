"""OOD score of ISO App. H on separable and identical sets."""

import numpy as np
import pytest

from vlsae.metrics.arithmetic import kth_neighbour_distance, ood_score


def test_kth_neighbour_distance_by_hand():
    reference = np.array([[0.0], [1.0], [3.0]])
    assert kth_neighbour_distance(np.array([[0.0], [2.5]]), reference, k=2) == pytest.approx([1.0, 1.5])
    with pytest.raises(ValueError, match="exceeds"):
        kth_neighbour_distance(reference, reference, k=4)


def test_ood_score_on_identical_and_separable_sets():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(200, 8))
    assert ood_score(targets.copy(), targets, k=10) == 0.5                 # same distances: no threshold helps
    far = targets + 50.0                                                   # a shifted cloud: every K-NN distance is larger
    assert ood_score(far, targets, k=10) == 1.0
    # queries drawn from the same distribution sit close to chance
    assert ood_score(rng.normal(size=(200, 8)), targets, k=10) < 0.65
