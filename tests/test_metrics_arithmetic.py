"""Vector arithmetic of ISO App. H: the queries, one-way recall, and the OOD score on separable and identical sets."""

import numpy as np
import pytest

from vlsae.metrics import arithmetic, encoder
from vlsae.metrics.arithmetic import kth_neighbour_distance, ood_score


def test_kth_neighbour_distance_by_hand():
    reference = np.array([[0.0], [1.0], [3.0]])
    assert kth_neighbour_distance(np.array([[0.0], [2.5]]), reference, k=2) == pytest.approx([1.0, 1.5])
    with pytest.raises(ValueError, match="exceeds"):
        kth_neighbour_distance(reference, reference, k=4)
    # a point is not its own neighbour when the set is scored against itself
    assert kth_neighbour_distance(reference, reference, k=1, exclude_self=True) == pytest.approx([1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="exceeds"):
        kth_neighbour_distance(reference, reference, k=3, exclude_self=True)


def test_ood_score_on_an_iid_null_and_separable_sets():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(2000, 4))
    # queries from the targets' own distribution: chance, up to the best threshold's fit to 4000 points (~0.52).
    # With a target counted as its own first neighbour, K = 1 would give every target distance 0 and
    # separate the sets perfectly.
    for k in (1, 10):
        assert ood_score(rng.normal(size=(2000, 4)), targets, k=k) == pytest.approx(0.5, abs=0.05)
    far = targets + 50.0                                                   # a shifted cloud: every K-NN distance is larger
    assert ood_score(far, targets, k=10) == 1.0


def test_queries_and_one_way_recall():
    source, delta = (np.eye(3), np.zeros((3, 3))), (np.eye(3)[[1, 2, 0]], np.eye(3))
    q = arithmetic.queries(source, delta)
    assert np.array_equal(q["Q"], np.eye(3) + np.eye(3)[[1, 2, 0]]) and np.array_equal(q["Q_SAE"], np.eye(3))
    assert np.array_equal(q["baseline_source"], np.eye(3)) and np.array_equal(q["baseline_delta"], np.eye(3)[[1, 2, 0]])
    targets = np.eye(3)
    assert encoder.query_recall_at_k(np.eye(3)[[1, 2, 0]], targets, 1, batch=3) == 0.0
    assert encoder.query_recall_at_k(np.eye(3)[[1, 2, 0]], targets, 2, batch=3) == 1.0   # one target beats the own one
    assert encoder.query_recall_at_k(np.eye(3), targets, 1, batch=3) == 1.0
    # batches of one pair: each query sees only its own target
    assert encoder.query_recall_at_k(np.eye(3)[[1, 2, 0]], targets, 1, batch=1) == 1.0
