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
    # a spare learned atom is left unmatched: [e1, e2, (e1+e2)/sqrt2] against e1, e2 gives W = 0
    assert wasserstein_atoms(np.r_[np.eye(2), [[1.0, 1.0]]], truth) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="at least as many"):
        wasserstein_atoms(np.eye(2), np.eye(3)[:, :2])
    with pytest.raises(ValueError, match="dimension"):
        wasserstein_atoms(np.eye(3), np.eye(2))


def test_mma_identical_permuted_codes_is_one_and_by_hand():
    rng = np.random.default_rng(1)
    codes = rng.exponential(size=(50, 6)) * (rng.random((50, 6)) < 0.3)
    assert mean_matching_accuracy(2.0 * codes[:, ::-1], codes) == pytest.approx(1.0)
    truth = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    learned = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # columns: learned (1,1,0), (0,0,1); truth (1,0,1), (0,1,1): cos = [[1/2, 1/2], [1/sqrt2, 1/sqrt2]]
    assert mean_matching_accuracy(learned, truth) == pytest.approx((0.5 + 1 / math.sqrt(2)) / 2)
    # a spare learned latent is left unmatched; a split latent matches one half of the pattern
    assert mean_matching_accuracy(np.c_[truth, np.zeros(3)], truth) == pytest.approx(1.0)
    split = np.array([[1.0, 0.0], [0.0, 1.0]])  # one true pattern (1, 1), learned as (1, 0) and (0, 1)
    assert mean_matching_accuracy(split, np.ones((2, 1))) == pytest.approx(1 / math.sqrt(2))
    with pytest.raises(ValueError, match="at least as many"):
        mean_matching_accuracy(np.ones((3, 1)), truth)


def test_recovery_of_a_model_holding_the_true_dictionary(tmp_path):
    import torch

    from vlsae.metrics.dictionary import evaluate_recovery
    from vlsae.sae import PairedSAE, SAESpec
    from vlsae.store import EmbeddingStore
    from vlsae.synth.iso import IsoDGP, write_iso_dataset

    # tau1 = 1: [I, T, B] is exact; L = 2: one unimodal and one bimodal atom, which MP finds exactly
    dgp = IsoDGP(d=64, k=4, L=2, tau1=1.0, tau2=0.4, coherence=0.0)
    gt = write_iso_dataset(dgp, tmp_path, n_train=10, n_eval=400, seed=0)
    atoms, codes = gt.dicts.truth("bimodal"), gt.codes("bimodal")
    store = EmbeddingStore(tmp_path / "eval")
    spare = 2  # spare atoms are ignored by both metrics
    model = PairedSAE(SAESpec(architecture="mp", latents=len(atoms) + spare, params={"k": 2}), dgp.d).eval()
    with torch.no_grad():
        model.side("image").W_dec[:len(atoms)] = -torch.tensor(atoms, dtype=torch.float32)  # signs do not matter
    exact = evaluate_recovery(model, store, atoms, codes)
    assert exact["W"] == pytest.approx(0.0, abs=1e-3) and exact["mma"] == pytest.approx(1.0, abs=1e-6)
    assert exact["r2"] == pytest.approx(1.0, abs=1e-6) and exact["l0"] == pytest.approx(2.0)
    with torch.no_grad():
        model.side("image").W_dec.copy_(torch.nn.functional.normalize(torch.randn(len(atoms) + spare, dgp.d), dim=1))
    random = evaluate_recovery(model, store, atoms, codes)
    assert random["W"] > 0.8 and random["mma"] < 0.6 and random["r2"] < 0.9
