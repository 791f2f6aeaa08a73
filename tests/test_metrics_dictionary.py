"""Table 5's recovery metrics on hand-made cases: the energy-weighted OT ``W`` and ``mma`` of the authors,
their as-coded variants, and the Hungarian versions."""

import math

import numpy as np
import pytest

from vlsae.metrics.dictionary import (energy, energy_mma, energy_wasserstein, mean_matching_accuracy, oriented,
                                      shuffled_rows, transport_cost, wasserstein_atoms)


def test_energy_is_the_mean_squared_code():
    codes = np.array([[1.0, 0.0, -2.0], [3.0, 0.0, 0.0]])
    assert energy(codes) == pytest.approx([5.0, 0.0, 2.0])


def test_transport_cost_by_hand():
    # two atoms each side; e1 -> e1 costs 0, e2 -> (e1 + e2)/sqrt2 costs 1 - 1/sqrt2
    x, y = np.eye(2), np.array([[1.0, 0.0], [1.0, 1.0]])
    half = np.array([1.0, 1.0])
    assert transport_cost(x, y, half, half) == pytest.approx(0.5 * (1 - 1 / math.sqrt(2)))
    # masses 3:1 against 1:3 (normalised inside): e1 carries 3/4 but only 1/4 can stay on e1 at cost 0;
    # the other 1/2 goes to the diagonal at 1 - 1/sqrt2, e2's 1/4 too
    assert transport_cost(x, y, np.array([3.0, 1.0]), np.array([1.0, 3.0])) == pytest.approx(0.75 * (1 - 1 / math.sqrt(2)))
    # a row without mass is ignored, whatever its direction
    assert transport_cost(np.r_[x, [[-1.0, 0.0]]], x, np.array([1.0, 1.0, 0.0]), half) == pytest.approx(0.0, abs=1e-12)


def test_energy_weighting_by_hand():
    """W weighs the learned atoms by their energy: a wrong atom that never fires costs nothing, the same
    wrong atom carrying half the energy costs half its distance."""
    truth = np.eye(2)
    true_energy = np.array([1.0, 1.0])
    learned = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])   # the third atom is 45 degrees off both
    silent = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])      # codes: the diagonal atom never fires
    assert energy_wasserstein(learned, silent, truth, true_energy) == pytest.approx(0.0, abs=1e-12)
    loud = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])        # e2's energy sits on the diagonal atom
    assert energy_wasserstein(learned, loud, truth, true_energy) == pytest.approx(0.5 * (1 - 1 / math.sqrt(2)))


def test_truth_against_itself_scores_w_zero_and_mma_one():
    from vlsae.synth.iso import IsoDGP, write_iso_dataset
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        gt = write_iso_dataset(IsoDGP(d=64, k=2, L=4, tau1=0.999), tmp, n_train=10, n_eval=300, seed=0)
    for truth in ("bimodal", "unimodal"):
        atoms, codes, weights = gt.dicts.full(truth), gt.full_codes(truth), gt.truth_energy(truth)
        assert energy_wasserstein(atoms, codes, atoms, weights) == pytest.approx(0.0, abs=1e-9)
        assert energy_mma(codes, codes, weights) == pytest.approx(1.0, abs=1e-9)
        # the notebook's shuffled row order breaks the perfect learner's mma
        assert energy_mma(shuffled_rows(codes), codes, weights) < 0.9
    # the notebook's truth energy (B's image code added unsquared) makes a perfect learner score W > 0
    atoms, codes = gt.dicts.full("bimodal"), gt.full_codes("bimodal")
    assert energy_wasserstein(atoms, codes, atoms, gt.truth_energy("bimodal", as_coded=True)) > 0.01
    assert gt.truth_energy("unimodal", as_coded=True) == pytest.approx(gt.truth_energy("unimodal"))


def test_orientation_flips_latents_whose_codes_sum_negative():
    atoms, codes = np.eye(2), np.array([[-1.0, 2.0], [-3.0, 0.0]])
    flipped_atoms, flipped_codes = oriented(atoms, codes)
    assert flipped_atoms == pytest.approx(np.diag([-1.0, 1.0])) and flipped_codes == pytest.approx(np.abs(codes))
    # the reconstruction is unchanged
    assert flipped_codes @ flipped_atoms == pytest.approx(codes @ atoms)


def test_hungarian_identical_dictionaries_up_to_order_and_scale():
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(20, 8))
    shuffled = 3.0 * atoms[rng.permutation(20)]
    assert wasserstein_atoms(shuffled, atoms) == pytest.approx(0.0, abs=1e-7)
    assert wasserstein_atoms(-atoms, atoms, sign_invariant=True) == pytest.approx(0.0, abs=1e-7)
    # -e1, -e2 against e1, e2: crossing (cost sqrt 2 each) beats antipodes (cost 2 each)
    assert wasserstein_atoms(-np.eye(2), np.eye(2)) == pytest.approx(math.sqrt(2))


def test_hungarian_wasserstein_by_hand():
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


def test_hungarian_mma_identical_permuted_codes_is_one_and_by_hand():
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

    # tau1 = 1: [I, T, B] is exact and the companions carry no energy; L = 2: one unimodal and one
    # bimodal atom per sample, which MP finds exactly
    dgp = IsoDGP(d=64, k=4, L=2, tau1=1.0, tau2=0.4, coherence=0.0, construction="subspaces")
    gt = write_iso_dataset(dgp, tmp_path, n_train=10, n_eval=400, seed=0)
    atoms = gt.dicts.truth("bimodal")
    store = EmbeddingStore(tmp_path / "eval")
    spare = 2  # silent spare atoms are ignored by every metric
    model = PairedSAE(SAESpec(architecture="mp", latents=len(atoms) + spare, params={"k": 2}), dgp.d).eval()

    def scores():
        rows = evaluate_recovery(model, store, gt)
        return {(r["truth"], r["metric"]): r["value"] for r in rows}

    with torch.no_grad():
        model.side("image").W_dec[:len(atoms)] = -torch.tensor(atoms, dtype=torch.float32)  # signs do not matter
    exact = scores()
    for metric in ("W", "W_hungarian"):
        assert exact[("bimodal", metric)] == pytest.approx(0.0, abs=1e-3)
    for metric in ("mma", "mma_hungarian"):
        assert exact[("bimodal", metric)] == pytest.approx(1.0, abs=1e-6)
    assert exact[("", "r2")] == pytest.approx(1.0, abs=1e-6) and exact[("", "l0")] == pytest.approx(2.0)
    assert exact[("bimodal", "mma_as_coded")] < 0.5  # shuffled rows
    with torch.no_grad():
        model.side("image").W_dec.copy_(torch.nn.functional.normalize(torch.randn(len(atoms) + spare, dgp.d), dim=1))
    random = scores()
    assert random[("bimodal", "W")] > 0.3 and random[("bimodal", "mma")] < 0.6 and random[("", "r2")] < 0.9
