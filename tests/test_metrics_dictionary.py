"""W(D, W) and mma(Z, C) on hand-made cases."""

import math

import numpy as np
import pytest

from vlsae.metrics.dictionary import mean_matching_accuracy, wasserstein_atoms


def test_identical_dictionaries_up_to_order_and_scale():
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(20, 8))
    shuffled = 3.0 * atoms[rng.permutation(20)]
    assert wasserstein_atoms(shuffled, atoms) == pytest.approx(0.0, abs=1e-7)
    assert wasserstein_atoms(-atoms, atoms, sign_invariant=True) == pytest.approx(0.0, abs=1e-7)
    # -e1, -e2 against e1, e2: crossing (cost sqrt 2 each) beats antipodes (cost 2 each)
    assert wasserstein_atoms(-np.eye(2), np.eye(2)) == pytest.approx(math.sqrt(2))


def test_wasserstein_by_hand():
    truth = np.eye(2)
    learned = np.array([[1.0, 1.0], [0.0, 1.0]])  # 45 degrees off e1, e2 exact
    # best transport: [1,1]/sqrt2 -> e1 (distance sqrt(2 - sqrt2)), e2 -> e2 (0)
    assert wasserstein_atoms(learned, truth) == pytest.approx(math.sqrt(2 - math.sqrt(2)) / 2)
    with pytest.raises(ValueError, match="as many"):
        wasserstein_atoms(np.eye(3), np.eye(2, 3)[:2].T)


def test_mma_identical_permuted_codes_is_one_and_by_hand():
    rng = np.random.default_rng(1)
    codes = rng.exponential(size=(50, 6)) * (rng.random((50, 6)) < 0.3)
    assert mean_matching_accuracy(2.0 * codes[:, ::-1], codes) == pytest.approx(1.0)
    truth = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    learned = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # columns: learned (1,1,0), (0,0,1); truth (1,0,1), (0,1,1): cos = [[1/2, 1/2], [1/sqrt2, 1/sqrt2]]
    assert mean_matching_accuracy(learned, truth) == pytest.approx((0.5 + 1 / math.sqrt(2)) / 2)
    # an extra learned latent that matches nothing counts as 0: (1 + 1 + 0) / 3
    assert mean_matching_accuracy(np.c_[truth, np.zeros(3)], truth) == pytest.approx(2 / 3)
