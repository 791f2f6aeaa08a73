"""General SAE metrics (ISO E.2.1) on hand-made inputs with values worked out by hand."""

import numpy as np
import pytest

from vlsae.metrics.sae import (ReconstructionStats, coactivation_structure, coherence, dictionary_structure,
                               effective_rank, insertion_deletion, stability, stable_rank)


def test_ranks_of_diagonal_matrices():
    assert stable_rank(np.eye(4)) == pytest.approx(4) and effective_rank(np.eye(4)) == pytest.approx(4)
    # sigma = (4, 3): stable = (16 + 9) / 16; p = (4/7, 3/7)
    assert stable_rank(np.diag([3.0, 4.0])) == pytest.approx(25 / 16)
    p = np.array([4, 3]) / 7
    assert effective_rank(np.diag([3.0, 4.0])) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert effective_rank(np.diag([5.0, 0.0, 0.0])) == pytest.approx(1.0)


def test_coherence_of_orthogonal_and_of_close_atoms():
    assert coherence(np.eye(5)) == 0.0
    atoms = np.array([[1.0, 0, 0], [0, 2.0, 0], [0.6, 0.8, 0]])  # norms do not matter
    assert coherence(atoms) == pytest.approx(0.8)
    assert coherence(atoms, block=1) == pytest.approx(0.8)                 # row blocks: the same maximum
    rng = np.random.default_rng(0)
    many = rng.normal(size=(37, 6))
    unit = many / np.linalg.norm(many, axis=1, keepdims=True)
    gram = unit @ unit.T - 10 * np.eye(37)
    assert coherence(many, block=5) == pytest.approx(gram.max())


def test_spectral_norm_of_a_nonnegative_symmetric_matrix():
    from vlsae.metrics.sae import spectral_norm_nonnegative

    rng = np.random.default_rng(1)
    m = rng.random((40, 40)) * (rng.random((40, 40)) < 0.2)
    m = m + m.T
    assert spectral_norm_nonnegative(m, tol=1e-10) == pytest.approx(np.abs(np.linalg.eigvalsh(m)).max(), rel=1e-6)
    assert spectral_norm_nonnegative(np.zeros((3, 3))) == 0.0


def test_dictionary_structure_drops_dead_atoms_and_weights_by_energy():
    atoms = np.vstack([np.eye(3), [[0.6, 0.8, 0]]])
    out = dictionary_structure(atoms, energy=np.array([4.0, 1.0, 1.0, 0.0]))  # the last atom is dead
    assert out["coherence"] == 0.0 and out["stable_rank_d"] == pytest.approx(3)
    # weighted rows sqrt(E) D = diag(2, 1, 1): stable rank (4 + 1 + 1) / 4
    assert out["stable_rank_dw"] == pytest.approx(1.5)


def test_coactivation_structure_in_closed_form():
    # columns z1 = e1, z2 = e2, z3 = e1 + e2, z4 dead: normalised Z^T Z = I + (1/sqrt 2)(off-diagonal to 3)
    z = np.array([[1.0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
    atoms = np.array([[1.0, 0, 0], [0, 0, 1], [-0.6, 0.8, 0], [0, 1, 0]])  # D1 . D3 = -0.6
    out = coactivation_structure(z.T @ z, atoms)
    assert out["connectivity"] == pytest.approx(1 - 7 / 9)             # 7 of 9 entries are non-zero
    # eigenvalues 2, 1, 0: stable rank 5/4, effective rank exp(H(2/3, 1/3)) = 3 / 2^(2/3)
    assert out["stable_rank_z"] == pytest.approx(1.25)
    assert out["effective_rank_z"] == pytest.approx(3 / 2 ** (2 / 3))
    # ReLU[-(G ⊙ DD^T)] has one symmetric entry pair 0.6 / sqrt 2: its spectral norm
    assert out["negative_interference"] == pytest.approx(0.6 / np.sqrt(2))


def test_insertion_and_deletion_curves():
    x = np.array([[2.0, 1.0], [0.0, -3.0]]) + 0.5
    bias = np.array([0.5, 0.5])
    values = np.array([[1.0, 2.0], [-3.0, 0.0]])                       # sample 2 has one active latent
    atoms = np.array([[[0.0, 1], [1, 0]], [[0, 1], [1, 0]]])           # B x k x d
    insertion, deletion = insertion_deletion(x, values, atoms, bias)
    # sample 1: insert e1 (z=2) then e2: scores 0, 1 - 1/5, 1 -> area (0.4 + 0.9) / 2;
    # delete: 1, 1 - 4/5, 0 -> area (0.6 + 0.1) / 2
    assert insertion[0] == pytest.approx(0.65) and deletion[0] == pytest.approx(0.35)
    assert insertion[1] == pytest.approx(0.5) and deletion[1] == pytest.approx(0.5)


def test_stability_across_seeds():
    rotated = np.array([[0.6, 0.8], [-0.8, 0.6]])
    assert stability([np.eye(2), np.eye(2)[::-1]]) == 0.0                  # a permutation is the same dictionary
    assert stability([np.eye(2), rotated]) == pytest.approx(0.4)           # best matching keeps cos 0.6, 0.6
    assert stability([np.eye(2), rotated], sign_invariant=True) == pytest.approx(0.2)  # |cos| 0.8, 0.8
    with pytest.raises(ValueError, match="two seeds"):
        stability([np.eye(2)])


def test_reconstruction_stats():
    x = np.array([[1.0, 0], [0, 1]])
    stats = ReconstructionStats(mean=x.mean(0))
    stats.update(x[:1], np.array([[1.0, 0]]), np.array([[1.0, 0, 0]]))
    stats.update(x[1:], np.array([[0.0, 0]]), np.array([[0.0, -2, 0]]))
    # errors 0, 1; spreads 0.5, 0.5 -> R^2 per instance 1, -1
    assert stats.result() == pytest.approx({"mse": 0.5, "r2": 0.0, "l0": 1.0, "l1": 1.5})
